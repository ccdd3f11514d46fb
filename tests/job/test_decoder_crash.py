"""A decode worker that dies costs at most the sample it was decoding, never the shard or the job.

A worker can die for a reason of its own (its node went away, the OOM killer): the sample is
decoded again in a fresh worker and nothing is lost. Only a death that repeats in the fresh
worker is the sample's fault: a DecoderCrashed error row for it, every other sample intact.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import time

import pytest

from pipeline.job.decode_workers import DecodePool
from tests.support.shards import make_shard
from tests.support.videos import encode, ffmpeg_testsrc, smooth_frames
from wfvae import WFVAE

from .conftest import TINY_MODEL
from .dataflow_helpers import expected, make_encoder, read_config, written


@pytest.fixture(scope="module")
def shard(tmp_path_factory):
    """A long video (its decoding takes a while) between short ones."""
    samples = [{"__key__": "short-0", "mp4": encode(smooth_frames(10, 48, 64)), "txt": "short"},
               {"__key__": "long", "mp4": ffmpeg_testsrc(30, size="320x240", fps=25), "txt": "long"}]
    samples += [{"__key__": f"short-{i}", "mp4": encode(smooth_frames(10, 48, 64)), "txt": "short"} for i in (1, 2)]
    path = tmp_path_factory.mktemp("crash") / "part-000000.tar"
    path.write_bytes(make_shard(samples))
    return str(path)


def _kill_worker_of(pool: DecodePool, key: str, spare: set[int], first: bool, timeout: float = 60) -> int:
    """SIGKILLs the worker that holds ``key`` (``first``: as the next sample to end; not one in ``spare``),
    a moment after."""
    def holding(samples) -> bool:
        return bool(samples) and (samples[0].key == key if first else key in [s.key for s in samples])

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [pid for pid, samples in pool.pids().items() if holding(samples) and pid not in spare]
        if pids:
            time.sleep(0.1)  # mid-sample, if it is still on it
            if holding(pool.pids().get(pids[0])):
                os.kill(pids[0], signal.SIGKILL)
                return pids[0]
        time.sleep(0.01)
    raise AssertionError(f"no decode worker was seen decoding {key!r}")


@pytest.mark.parametrize("call_samples", [1, 4], ids=["one-sample-calls", "four-sample-calls"])
@pytest.mark.parametrize("deaths", [1, 2])
def test_a_killed_decode_worker_costs_its_sample_only_when_the_fresh_one_dies_too(ray_head, shard, tmp_path, deaths,
                                                                                   call_samples):
    """With calls of four samples the first death cannot tell which of them crashed: they are decoded
    again one parcel per sample, so the second death names the sample."""
    config = read_config("all")
    pool = DecodePool(2, call_samples=call_samples)
    encoder = make_encoder(tmp_path, WFVAE.from_pretrained(TINY_MODEL), config, pool, batch_size=2)
    calls = concurrent.futures.ThreadPoolExecutor(1)
    try:
        job = calls.submit(encoder.encode_shard, shard, 1)
        killed: set[int] = set()
        for death in range(deaths):
            killed.add(_kill_worker_of(pool, "long", killed, first=call_samples == 1 or death > 0))
        record = job.result(timeout=120)
        assert pool.restarts == 1  # one retry in a fresh worker, never more
    finally:
        calls.shutdown(wait=False, cancel_futures=True)
        encoder.close()
        pool.close()
    clips, errors = expected(shard, config)
    rows, error_rows = written(tmp_path, shard)
    short = [clip for clip in clips if clip[0] != "long"]
    assert [row for row in rows if row[0] != "long"] == short  # every other sample intact, in order
    if deaths == 1:  # decoded again in a fresh worker: nothing lost, nothing duplicated
        assert (rows, error_rows) == (clips, errors) and record["errors"] == 0
    else:
        assert error_rows == ["long"] and record["errors_by_type"] == {"DecoderCrashed": 1}
        long_rows = [row for row in rows if row[0] == "long"]
        assert long_rows == [clip for clip in clips if clip[0] == "long"][:len(long_rows)]  # a prefix, if any
        assert len(long_rows) < len(clips) - len(short)
