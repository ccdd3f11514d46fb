"""The dataflow from shard to encoder ends, with exactly the expected rows, for every clip policy,
decode-worker count, batch size and shard size; and it overlaps the next shard with the current one."""

from __future__ import annotations

import pytest

from pipeline.job.decode_capacity import DecodeWorkers, NoDecodeCPU, workers_per_encoder
from wfvae import WFVAE

from tests.support.dataflow import FRAMES, calls_of, encode_shards, expected, make_encoder, read_config, written
from tests.support.jobs import TINY_MODEL
from tests.support.shards import write_shards

DEADLINE = 90  # seconds for a case's two shards: generous, only a hang comes near it
POLICIES = ["first", "uniform:3", "all", "whole"]


@pytest.fixture(scope="module")
def vae():
    return WFVAE.from_pretrained(TINY_MODEL)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """A shard of one sample and one of four (the last broken)."""
    return write_shards(tmp_path_factory.mktemp("dataflow"), [1, 4], frames=FRAMES, broken={3: "random"}).urls


@pytest.fixture(scope="module", params=[(1, 1), (2, 3), (None, None)],
                ids=["1-worker-1-sample-calls", "2-workers-3-sample-calls", "default-workers-and-calls"])
def workers(request, ray_head) -> tuple[DecodeWorkers, int | None]:
    """A count of decode workers (None: what a job gets for one encoder) and samples per call (None: sized from
    the decoding times seen, as in a job)."""
    count, call_samples = request.param
    return DecodeWorkers(count), call_samples


@pytest.mark.parametrize("batch_size", [1, 4])
@pytest.mark.parametrize("clips", POLICIES)
def test_every_policy_worker_count_batch_and_shard_size_ends_with_the_expected_rows(vae, shards, workers, clips,
                                                                                     batch_size, tmp_path,
                                                                                     monkeypatch):
    config = read_config(clips)
    workers, call_samples = workers
    if call_samples:
        calls_of(call_samples, monkeypatch)
    encoder = make_encoder(tmp_path, vae, config, workers, batch_size)
    try:
        records = encode_shards(encoder, shards, DEADLINE)
        assert not any(worker.calls for worker in encoder.dataflow.pool.workers), "a call kept its worker"
    finally:
        encoder.close()
    for url, record in zip(shards, records):
        clips_expected, errors_expected = expected(url, config)
        assert written(tmp_path, url) == (clips_expected, errors_expected)
        assert record.rows == len(clips_expected) > 0 and record.errors == len(errors_expected)
        assert record.balance.decode_workers == workers.now()
        assert 0 <= record.balance.encoder_waiting_share <= 1 and record.balance.hint


def test_quick_samples_are_decoded_several_to_a_call(ray_head, vae, tmp_path, monkeypatch):
    """Shards of 1 and 4 samples in calls of up to 3 samples: 1 + 2 calls; and a pool left to size its
    calls hands these tiny videos out several at a time once it has seen a few decoded."""
    urls = write_shards(tmp_path / "shards", [1, 4], frames=FRAMES, broken={3: "random"}).urls
    with monkeypatch.context() as patched:
        calls_of(3, patched)
        encoder = make_encoder(tmp_path / "out", vae, read_config("first"), DecodeWorkers(1), 2)
        try:
            records = encode_shards(encoder, urls, DEADLINE)
        finally:
            encoder.close()
    assert [record.decoding.calls for record in records] == [1, 2]
    for url in urls:
        assert written(tmp_path / "out", url) == expected(url, read_config("first"))

    urls = write_shards(tmp_path / "more", [12, 12], frames=FRAMES).urls
    encoder = make_encoder(tmp_path / "adaptive", vae, read_config("first"), DecodeWorkers(1), 2)
    try:
        first, second = encode_shards(encoder, urls, DEADLINE)
    finally:
        encoder.close()
    assert second.decoding.calls < 12  # tiny videos: several to a call once a few were seen


def test_the_next_shard_decodes_while_the_current_one_encodes(vae, ray_head, tmp_path):
    urls = write_shards(tmp_path / "shards", [6, 6, 6], frames=FRAMES).urls
    encoder = make_encoder(tmp_path / "out", vae, read_config("uniform:3"), 2, batch_size=4)
    try:
        first, second, third = encode_shards(encoder, urls, DEADLINE)
    finally:
        encoder.close()
    for current, following in ((first, second), (second, third)):
        # the following shard's first sample went to a decode worker before the current one's encoding ended
        assert following.decode_started_at < current.encoded_at, (current, following)
        # one shard encodes at a time, and the encoder is free for the next before the current one is
        # committed: its decoded samples were waiting, published or not
        assert current.encoded_at <= following.encoding_started_at
        assert following.decode_started_at < current.committed_at


def test_the_summary_and_records_say_which_side_limited_the_run(vae, ray_head, tmp_path):
    from pipeline.job.balance import run_balance
    from pipeline.job.summary import format_summary
    from pipeline.output.reader import read_job_output
    from pipeline.output.layout import OutputLayout
    from pipeline.output.records import RunRecord

    data = write_shards(tmp_path / "shards", [3, 3], frames=FRAMES)
    encoder = make_encoder(tmp_path / "out", vae, read_config("first"), 1, batch_size=2)
    try:
        records = encode_shards(encoder, data.urls, DEADLINE)
    finally:
        encoder.close()
    for record in records:
        timings = record.timings
        assert timings.encoder_seconds >= timings.decode_wait_seconds >= 0 and timings.decode_seconds > 0
        assert record.balance.limit in ("decode", "encode", "input", "balanced")
    balance = run_balance(records)
    assert balance.decode_workers == 1 and balance.limit in balance.hint.replace("-bound", "")
    summary = read_job_output(OutputLayout(str(tmp_path / "out")), require_manifest=False).summary(data.names)
    summary.this_run = RunRecord("test", balance=balance)
    assert f"limited by    {balance.hint}" in format_summary(summary)


def test_by_default_each_encoder_gets_its_share_of_the_cpus_no_encoder_needs():
    gpu_nodes = [{"CPU": 4}, {"CPU": 96, "GPU": 8}, {"CPU": 48, "GPU": 4}]  # a CPU-only head and two GPU nodes
    assert workers_per_encoder(gpu_nodes, 12) == 11  # (4 + 96 + 48 - 12) // 12
    assert workers_per_encoder(gpu_nodes, 24) == 5  # two encoders per GPU: (148 - 24) // 24
    assert workers_per_encoder([{"CPU": 1, "GPU": 1}, {"CPU": 4}], 1) == 4  # a CPU-only node decodes for the GPU
    assert workers_per_encoder([{"CPU": 4}, {"CPU": 4}], 4) == 1  # four CPU encoders on two nodes
    with pytest.raises(NoDecodeCPU, match="no CPU for decode workers: the cluster has 1 CPU"):
        workers_per_encoder([{"CPU": 0}, {"CPU": 1, "GPU": 1}], 1)
    with pytest.raises(NoDecodeCPU, match="add CPU nodes, or run fewer encoder actors"):
        workers_per_encoder([{"CPU": 8, "GPU": 8}, {"CPU": 2}], 8)  # two spare CPUs for eight encoders
