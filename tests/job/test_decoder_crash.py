"""A decode worker that dies costs at most the sample it was decoding, never the shard or the job.

A worker can die for a reason of its own (its node went away, the OOM killer): the sample is
decoded again in a fresh worker and nothing is lost. Only a death that repeats in the fresh
worker is the sample's fault: a DecoderCrashed error row for it, every other sample intact.

A worker here may hold only two parcels of one clip ahead of the encoder, so the worker of the long
video is held back by the encoder: it is surely still on that sample, far from its end, whenever the
encoder is seen reading it.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import time

import pytest
import ray
from ray.util.state import list_actors

from pipeline.job import decode_workers
from pipeline.job.decode_capacity import DecodeWorkers
from pipeline.reading import ReadConfig
from tests.support.dataflow import calls_of, expected, make_encoder, written
from tests.support.jobs import TINY_MODEL
from tests.support.shards import make_shard
from tests.support.videos import encode, ffmpeg_testsrc, smooth_frames
from wfvae import WFVAE

CONFIG = ReadConfig(num_frames=5, temporal_compression=4, resolution=(32, 32), clips="all")
CLIP_BYTES = 5 * 32 * 32 * 3


@pytest.fixture(scope="module")
def shard(tmp_path_factory):
    """A long video (30 clips, far more than a worker may hold ahead) between short ones."""
    samples = [{"__key__": "short-0", "mp4": encode(smooth_frames(10, 48, 64)), "txt": "short"},
               {"__key__": "long", "mp4": ffmpeg_testsrc(6, size="64x48", fps=25), "txt": "long"}]
    samples += [{"__key__": f"short-{i}", "mp4": encode(smooth_frames(10, 48, 64)), "txt": "short"} for i in (1, 2)]
    path = tmp_path_factory.mktemp("crash") / "part-000000.tar"
    path.write_bytes(make_shard(samples))
    return str(path)


def _wait_for(what: str, condition, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.02)
    raise AssertionError(f"never saw {what}")


def _kill_while_reading_long(encoder, killed: set[int]) -> int:
    """SIGKILLs the encoder's one decode worker (not one killed before) once the encoder has read some of
    the long video's clips from it."""
    def fresh_worker() -> int | None:
        """The pid of the one decode worker alive, once Ray's state shows just one (a test before this one
        killed its encoder's workers, which the state may show alive for a moment)."""
        alive = list_actors(address=ray.get_runtime_context().gcs_address,  # this session's head: others may run
                            filters=[("class_name", "=", "DecodeWorker"), ("state", "=", "ALIVE")])
        pids = [actor.pid for actor in alive if actor.pid not in killed]
        return pids[0] if len(pids) == 1 else None

    pid = _wait_for("a fresh decode worker up", fresh_worker)
    progress, _ = encoder.progress()
    clips = progress.clips if progress and progress.samples == 2 else 2

    def reading_long() -> bool:
        progress, _ = encoder.progress()
        return progress is not None and progress.samples == 2 and progress.clips >= clips + 2

    _wait_for("the encoder reading the long video", reading_long)
    os.kill(pid, signal.SIGKILL)
    return pid


@pytest.mark.parametrize("call_samples", [1, 4], ids=["one-sample-calls", "four-sample-calls"])
@pytest.mark.parametrize("deaths", [1, 2])
def test_a_killed_decode_worker_costs_its_sample_only_when_the_fresh_one_dies_too(ray_head, shard, tmp_path, deaths,
                                                                                   call_samples, monkeypatch):
    """With calls of four samples the first death cannot tell which of them crashed: they are decoded
    again one parcel per sample, so the second death names the sample."""
    monkeypatch.setattr(decode_workers, "PARCEL_BYTES", CLIP_BYTES)
    monkeypatch.setattr(decode_workers, "BYTES_AHEAD", 2 * CLIP_BYTES)
    calls_of(call_samples, monkeypatch)
    encoder = make_encoder(tmp_path, WFVAE.from_pretrained(TINY_MODEL), CONFIG,
                           DecodeWorkers(1), batch_size=2)
    calls = concurrent.futures.ThreadPoolExecutor(1)
    try:
        shard_call = encoder.encode_shard(shard, 1)
        next(shard_call)  # opened
        job = calls.submit(lambda: list(shard_call)[-1])
        killed: set[int] = set()
        for _ in range(deaths):
            killed.add(_kill_while_reading_long(encoder, killed))
        record = job.result(timeout=120)
    finally:
        calls.shutdown(wait=False, cancel_futures=True)
        encoder.close()
    assert record.decoding.retried == 1  # one retry in a fresh worker, never more
    clips, errors = expected(shard, CONFIG)
    rows, error_rows = written(tmp_path, shard)
    short = [clip for clip in clips if clip[0] != "long"]
    assert [row for row in rows if row[0] != "long"] == short  # every other sample intact, in order
    if deaths == 1:  # decoded again in a fresh worker: nothing lost, nothing duplicated
        assert (rows, error_rows) == (clips, errors) and record.errors == 0
    else:
        assert error_rows == ["long"] and record.errors_by_type == {"DecoderCrashed": 1}
        long_rows = [row for row in rows if row[0] == "long"]
        assert long_rows == [clip for clip in clips if clip[0] == "long"][:len(long_rows)]  # a prefix, if any
        assert len(long_rows) < len(clips) - len(short)
