"""The dataflow from shard to encoder ends, with exactly the expected rows, for every clip policy,
decode-worker count, batch size and shard size; and it overlaps the next shard with the current one."""

from __future__ import annotations

import time

import pytest
import ray

from pipeline.job.decode_workers import CALL_SECONDS, MAX_CALL_SAMPLES, DecodePool, default_decode_workers
from wfvae import WFVAE

from .conftest import TINY_MODEL
from .dataflow_helpers import encode_shards, expected, make_encoder, read_config, write_shards, written

DEADLINE = 90  # seconds for a case's two shards: generous, only a hang comes near it
POLICIES = ["first", "uniform:3", "all", "whole"]


@pytest.fixture(scope="module")
def vae():
    return WFVAE.from_pretrained(TINY_MODEL)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """A shard of one sample and one of four (the last broken)."""
    return write_shards(tmp_path_factory.mktemp("dataflow"), [1, 4])


@pytest.fixture(scope="module", params=[(1, 1), (2, 3), ("default", None)],
                ids=["1-worker-1-sample-calls", "2-workers-3-sample-calls", "default-workers-and-calls"])
def pool(request, ray_head):
    """Decode workers shared by the cases of one count ("default": what a job gets for one CPU encoder) and
    samples per call (None: sized by the pool from the decoding times it sees, as in a job)."""
    size, call_samples = request.param
    if size == "default":
        size = default_decode_workers([n["Resources"] for n in ray.nodes() if n["Alive"]], 0, 1)
    pool = DecodePool(size, call_samples=call_samples)
    yield pool
    pool.close()


@pytest.mark.parametrize("batch_size", [1, 4])
@pytest.mark.parametrize("clips", POLICIES)
def test_every_policy_worker_count_batch_and_shard_size_ends_with_the_expected_rows(vae, shards, pool, clips,
                                                                                     batch_size, tmp_path):
    config = read_config(clips)
    encoder = make_encoder(tmp_path, vae, config, pool, batch_size)
    try:
        records = encode_shards(encoder, shards, DEADLINE)
    finally:
        encoder.close()
    for url, record in zip(shards, records):
        clips_expected, errors_expected = expected(url, config)
        assert written(tmp_path, url) == (clips_expected, errors_expected)
        assert record["rows"] == len(clips_expected) > 0 and record["errors"] == len(errors_expected)
        assert record["balance"]["decode_workers"] == len(pool)
        assert 0 <= record["balance"]["encoder_waiting_share"] <= 1 and record["balance"]["hint"]
    assert not any(pool.pids().values()), "a sample kept its place at a decode worker"


def test_quick_samples_are_decoded_several_to_a_call(ray_head, vae, tmp_path):
    """Shards of 1 and 4 samples in calls of up to 3 samples: 1 + 2 calls; and a pool left to size its
    calls hands these tiny videos out several at a time once it has seen a few decoded."""
    urls = write_shards(tmp_path / "shards", [1, 4])
    pool = DecodePool(1, call_samples=3)
    encoder = make_encoder(tmp_path / "out", vae, read_config("first"), pool, batch_size=2)
    try:
        encode_shards(encoder, urls, DEADLINE)
        assert pool.calls == 3
    finally:
        encoder.close()
        pool.close()
    for url in urls:
        assert written(tmp_path / "out", url) == expected(url, read_config("first"))

    adaptive = DecodePool(1)
    try:
        assert adaptive.group_size() == 1  # nothing seen yet
        for _ in range(20):
            adaptive.observe(0.004)  # a 4 ms sample: a dozen make a call of about CALL_SECONDS
        assert adaptive.group_size() == int(CALL_SECONDS / 0.004)
        for _ in range(40):
            adaptive.observe(0.5)  # slow samples go one to a call again
        assert adaptive.group_size() == 1
        for _ in range(200):
            adaptive.observe(0.0)
        assert adaptive.group_size() == MAX_CALL_SAMPLES
    finally:
        adaptive.close()


def test_the_next_shard_decodes_while_the_current_one_encodes(vae, ray_head, tmp_path):
    urls = write_shards(tmp_path / "shards", [6, 6, 6], broken=False)
    encoder = make_encoder(tmp_path / "out", vae, read_config("uniform:3"), 2, batch_size=4)
    try:
        first, second, third = encode_shards(encoder, urls, DEADLINE)
    finally:
        encoder.close()
    for current, following in ((first, second), (second, third)):
        # the following shard's first sample went to a decode worker before the current one's encoding ended
        assert following["decode_started_at"] < current["encoded_at"], (current, following)
        # one shard encodes at a time, and the encoder is free for the next before the current one is
        # committed: its decoded samples were waiting, published or not
        assert current["encoded_at"] <= following["encoding_started_at"]
        assert following["decode_started_at"] < current["committed_at"]


def test_the_summary_and_records_say_which_side_limited_the_run(vae, ray_head, tmp_path):
    from pipeline.job.summary import build_summary, format_summary
    from pipeline.output.layout import OutputLayout

    urls = write_shards(tmp_path / "shards", [3, 3], broken=False)
    encoder = make_encoder(tmp_path / "out", vae, read_config("first"), 1, batch_size=2)
    try:
        records = encode_shards(encoder, urls, DEADLINE)
    finally:
        encoder.close()
    for record in records:
        timings = record["timings"]
        assert timings["encoder_seconds"] >= timings["decode_wait_seconds"] >= 0 and timings["decode_seconds"] > 0
        assert record["balance"]["limit"] in ("decode", "encode", "input", "balanced")
    summary = build_summary(OutputLayout(str(tmp_path / "out")), ["shard-000000", "shard-000001"],
                            {"run_id": "test", "seconds": 1.0, "shards_encoded": 2, "shards_skipped": 0, "clips": 6,
                             "clips_per_second": 6.0})
    balance = summary["this_run"]["balance"]
    assert balance["decode_workers"] == 1 and balance["limit"] in balance["hint"].replace("-bound", "")
    assert f"limited by    {balance['hint']}" in format_summary(summary)


def test_by_default_each_encoder_gets_the_decode_workers_its_nodes_cpus_allow():
    gpu_nodes = [{"CPU": 4}, {"CPU": 96, "GPU": 8}, {"CPU": 48, "GPU": 4}]  # a CPU-only head and two GPU nodes
    assert default_decode_workers(gpu_nodes, 1.0, 12) == 11  # (96 - 8) // 8 and (48 - 4) // 4
    assert default_decode_workers(gpu_nodes, 0.5, 24) == 5  # two encoders per GPU: (48 - 8) // 8
    assert default_decode_workers([{"CPU": 8, "GPU": 8}], 1.0, 8) == 1  # never none
    assert default_decode_workers([{"CPU": 4}], 0, 1) == 3  # a CPU encoder and the rest of its node
    assert default_decode_workers([{"CPU": 4}, {"CPU": 4}], 0, 4) == 1  # four CPU encoders on two nodes
