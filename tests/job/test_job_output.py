"""The job end to end on local storage: rows, error rows, commit markers, summary, resume."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
import torch

from pipeline.output.schema import read_file_metadata, tensor_from_bytes
from pipeline.reading import ReadConfig, read_shard
from tests.support.jobs import SMALL_CLIPS, TINY_MODEL, run_cli
from tests.support.outputs import read_rows, read_summary, shard_counts, shards_by_state
from tests.support.shards import write_shards
from wfvae import WFVAE


def test_every_good_sample_gives_a_row_and_every_broken_one_an_error(ray_head, dataset, tmp_path):
    out = tmp_path / "out"
    run_cli(ray_head, "--input", dataset.spec, "--output", str(out), *SMALL_CLIPS)
    rows, errors = read_rows(out), read_rows(out, "errors")
    assert sorted(r["key"] for r in rows) == sorted(k for keys in dataset.good.values() for k in keys)
    assert sorted(e["key"] for e in errors) == sorted(k for keys in dataset.broken.values() for k in keys)
    assert all(e["stage"] and e["error_type"] and e["message"] for e in errors)
    for shard in dataset.good:
        record = json.loads((out / "_committed" / f"{shard}.json").read_text())
        assert record["rows"] == len(dataset.good[shard]) and record["errors"] == len(dataset.broken[shard])
    summary = read_summary(out)
    assert shards_by_state(summary) == (3, 3, 0, 0)
    assert summary["clips"] == len(rows) and summary["samples_failed"] == len(errors)
    assert len(summary["latent_stats"]["mean"]) == 4 and all(s > 0 for s in summary["latent_stats"]["std"])


def test_rows_hold_the_models_latents_for_the_clips_the_reader_gives(ray_head, dataset, tmp_path):
    out = tmp_path / "out"
    run_cli(ray_head, "--input", dataset.spec, "--output", str(out), *SMALL_CLIPS, "--store", "moments",
            "--latent-dtype", "float32")
    meta = read_file_metadata(pq.read_schema(out / "latents" / "part-000000.parquet"))
    assert meta["stored"] == "moments" and meta["temporal_compression"] == 4 and meta["latent_channels"] == 4
    assert meta["weights_sha256"] == WFVAE.from_pretrained(TINY_MODEL).weights_checksum()
    rows = {r["key"]: r for r in read_rows(out, shards=["part-000000"])}
    vae = WFVAE.from_pretrained(TINY_MODEL)
    config = ReadConfig(num_frames=5, temporal_compression=4, resolution=(32, 32))
    checked = 0
    for clip in read_shard(str(dataset.folder / "part-000000.tar"), config):
        if not hasattr(clip, "frames"):
            continue
        video = torch.from_numpy(clip.frames).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
        posterior = vae.encode(video)
        row = rows[clip.info.key]
        assert row["latent_shape"] == [4, 2, 4, 4] and row["num_frames"] == 5 and (row["height"], row["width"]) == (32, 32)
        stored = tensor_from_bytes(row["latent"], row["latent_shape"], row["latent_dtype"])
        logvar = tensor_from_bytes(row["logvar"], row["latent_shape"], row["latent_dtype"])
        # not bit for bit: the job encodes clips in batches of two, and PyTorch's CPU convolutions sum
        # a batch in another order than a single clip (~1e-6 apart)
        assert torch.allclose(stored, posterior.mean[0], atol=1e-5)
        assert torch.allclose(logvar, posterior.logvar[0], atol=1e-5)
        assert row["caption"] == f"caption {clip.info.key}" and json.loads(row["meta"])["s"] == 0
        assert row["frame_indices"] == clip.info.frame_indices
        checked += 1
    assert checked == len(rows) > 0


def test_rerun_skips_committed_shards_and_rewrites_nothing(ray_head, dataset, tmp_path):
    out = tmp_path / "out"
    run_cli(ray_head, "--input", dataset.spec, "--output", str(out), *SMALL_CLIPS)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")}
    run_cli(ray_head, "--input", dataset.spec, "--output", str(out), *SMALL_CLIPS, "--batch-size", "3")
    assert shard_counts(out) == (3, 3, 0)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")} == before
    assert len(read_rows(out)) == sum(len(k) for k in dataset.good.values())


@pytest.mark.slow
def test_a_different_config_is_refused_unless_overwrite(ray_head, dataset, tmp_path):
    out = tmp_path / "out"
    run_cli(ray_head, "--input", dataset.spec, "--output", str(out), *SMALL_CLIPS)
    refused = run_cli(ray_head, "--input", dataset.spec, "--output", str(out), *SMALL_CLIPS, "--num-frames", "9",
                      check=False)
    assert refused.returncode == 2
    assert "holds the output of a different job" in refused.stderr and "num_frames: 5 then, 9 now" in refused.stderr
    run_cli(ray_head, "--input", dataset.spec, "--output", str(out), *SMALL_CLIPS, "--num-frames", "9", "--overwrite")
    assert shard_counts(out) == (3, 0, 3)  # the previous contents removed: every shard encoded again
    assert {r["num_frames"] for r in read_rows(out)} == {9}


def test_whole_videos_stream_through_the_causal_cache_and_match_a_whole_clip_encode(ray_head, tmp_path):
    data = write_shards(tmp_path / "shards", 3, frames=30)
    out = tmp_path / "out"
    run_cli(ray_head, "--input", data.spec, "--output", str(out), *SMALL_CLIPS, "--clips", "whole",
            "--chunk-frames", "8", "--latent-dtype", "float32")
    rows = {r["key"]: r for r in read_rows(out)}
    assert len(rows) == 3
    vae = WFVAE.from_pretrained(TINY_MODEL)
    config = ReadConfig(num_frames=5, temporal_compression=4, resolution=(32, 32), clips="whole")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the encoder actor on a CPU node: the same sums in the same order
    try:
        for clip in read_shard(str(data.folder / "part-000000.tar"), config):
            row = rows[clip.info.key]
            assert row["num_frames"] == 29 and row["latent_shape"] == [4, 8, 4, 4]  # 30 frames: 1 + 7 x 4 used
            video = torch.from_numpy(clip.frames).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
            expected = vae.encode(video).mean[0]
            stored = tensor_from_bytes(row["latent"], row["latent_shape"], row["latent_dtype"])
            assert torch.equal(stored, expected)  # streamed in 8-frame chunks, stored as float32
    finally:
        torch.set_num_threads(threads)
