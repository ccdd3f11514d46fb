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


def _kill_worker_of(pool: DecodePool, key: str, spare: set[int], timeout: float = 60) -> int:
    """SIGKILLs the worker decoding ``key`` (first in its queue; not one in ``spare``), a moment after."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [pid for pid, owners in pool.pids().items() if owners and owners[0].key == key and pid not in spare]
        if pids:
            time.sleep(0.1)  # mid-sample, if it is still on it
            owners = pool.pids().get(pids[0])
            if owners and owners[0].key == key:
                os.kill(pids[0], signal.SIGKILL)
                return pids[0]
        time.sleep(0.01)
    raise AssertionError(f"no decode worker was seen decoding {key!r}")


@pytest.mark.parametrize("deaths", [1, 2])
def test_a_killed_decode_worker_costs_its_sample_only_when_the_fresh_one_dies_too(ray_head, shard, tmp_path, deaths):
    config = read_config("all")
    encoder = make_encoder(tmp_path, WFVAE.from_pretrained(TINY_MODEL), config, 2, batch_size=2)
    calls = concurrent.futures.ThreadPoolExecutor(1)
    try:
        job = calls.submit(encoder.encode_shard, shard, 1)
        killed: set[int] = set()
        for _ in range(deaths):
            killed.add(_kill_worker_of(encoder.dataflow.pool, "long", killed))
        record = job.result(timeout=120)
        assert encoder.dataflow.pool.restarts == 1  # one retry in a fresh worker, never more
    finally:
        calls.shutdown(wait=False, cancel_futures=True)
        encoder.close()
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
