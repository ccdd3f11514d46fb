"""Object storage end to end (moto's S3 server on 127.0.0.1) and ``ray job submit`` against a local head."""

from __future__ import annotations

import json
import subprocess

import fsspec
import pyarrow.parquet as pq
import pytest

from pipeline.output.storage import write_atomically

from .conftest import REPO, SMALL_CLIPS, read_output, run_cli


def test_input_and_output_on_s3(ray_head, dataset, local_s3):
    local_s3.create_bucket("videos")
    for path in sorted(dataset.folder.glob("*.tar")):
        local_s3.put("videos", f"shards/{path.name}", path.read_bytes())
    options = json.dumps(local_s3.storage_options)
    args = ["--input", "s3://videos/shards/part-{000000..000002}.tar", "--output", "s3://videos/latents",
            "--storage-options", options, *SMALL_CLIPS]
    first = run_cli(ray_head, *args)
    assert "3/3 committed" in first.stdout
    fs = fsspec.filesystem("s3", **local_s3.storage_options)
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.ls("videos/latents/_committed")) == \
        ["part-000000.json", "part-000001.json", "part-000002.json"]
    rows = [r for p in sorted(fs.glob("videos/latents/latents/*.parquet"))
            for r in pq.read_table(p, filesystem=fs).to_pylist()]
    assert sorted(r["key"] for r in rows) == sorted(k for keys in dataset.good.values() for k in keys)
    errors = [r for p in fs.glob("videos/latents/errors/*.parquet") for r in pq.read_table(p, filesystem=fs).to_pylist()]
    assert sorted(e["key"] for e in errors) == sorted(k for keys in dataset.broken.values() for k in keys)
    manifest = json.loads(fs.cat("videos/latents/_job.json"))
    assert manifest["config"]["storage_options"]["secret"] == "***"  # credentials are not written out
    second = run_cli(ray_head, *args)
    assert "3 already committed, 0 to encode" in second.stdout


def test_failed_upload_leaves_no_object(local_s3):
    local_s3.create_bucket("partial")
    fs = fsspec.filesystem("s3", **local_s3.storage_options)

    def fail_halfway(file):
        file.write(b"x" * 6 * 2**20)  # past s3fs's first multipart block
        raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError, match="writer failed"):
        write_atomically(fs, "partial/latents/shard.parquet", fail_halfway)
    fs.invalidate_cache()
    assert not fs.exists("partial/latents/shard.parquet")
    write_atomically(fs, "partial/latents/shard.parquet", lambda file: file.write(b"complete"))
    assert fs.cat("partial/latents/shard.parquet") == b"complete"


def test_ray_job_submit_against_a_local_head(ray_head, dataset, tmp_path):
    out = tmp_path / "submitted"
    result = subprocess.run(
        [str(REPO / ".venv" / "bin" / "ray") if (REPO / ".venv" / "bin" / "ray").exists() else "ray", "job", "submit",
         "--address", ray_head.dashboard_url, "--working-dir", str(REPO), "--",
         "python", "jobs/encode_dataset.py", "--input", dataset.spec, "--output", str(out), *SMALL_CLIPS],
        env=ray_head.env, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "succeeded" in result.stdout + result.stderr
    assert "3/3 committed" in result.stdout
    assert len(read_output(out)) == sum(len(k) for k in dataset.good.values())
