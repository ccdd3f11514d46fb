"""Object storage end to end (moto's S3 server on 127.0.0.1) and ``ray job submit`` against a local head."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import fsspec
import pytest

from pipeline.output.storage import write_atomically
from tests.support.jobs import REPO, SMALL_CLIPS, run_cli
from tests.support.outputs import read_rows, read_summary, shard_counts, shards_by_state


def test_input_and_output_on_s3(ray_head, dataset, local_s3):
    local_s3.create_bucket("videos")
    for path in sorted(dataset.folder.glob("*.tar")):
        local_s3.put("videos", f"shards/{path.name}", path.read_bytes())
    output, options = "s3://videos/latents", local_s3.storage_options
    args = ["--input", "s3://videos/shards/part-{000000..000002}.tar", "--output", output,
            "--storage-options", json.dumps(options), *SMALL_CLIPS]
    run_cli(ray_head, *args)
    assert shards_by_state(read_summary(output, options)) == (3, 3, 0, 0)
    fs = fsspec.filesystem("s3", **options)
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.ls("videos/latents/_committed")) == \
        ["part-000000.json", "part-000001.json", "part-000002.json"]
    rows = read_rows(output, storage_options=options)
    assert sorted(r["key"] for r in rows) == sorted(k for keys in dataset.good.values() for k in keys)
    errors = read_rows(output, "errors", storage_options=options)
    assert sorted(e["key"] for e in errors) == sorted(k for keys in dataset.broken.values() for k in keys)
    manifest = json.loads(fs.cat("videos/latents/_job.json"))
    assert manifest["config"]["storage_options"]["secret"] == "***"  # credentials are not written out
    run_cli(ray_head, *args)
    assert shard_counts(output, options) == (3, 3, 0)


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


@pytest.mark.slow
def test_ray_job_submit_against_a_local_head(ray_head, dataset, tmp_path):
    out = tmp_path / "submitted"
    result = subprocess.run(
        [str(REPO / ".venv" / "bin" / "ray") if (REPO / ".venv" / "bin" / "ray").exists() else "ray", "job", "submit",
         "--address", ray_head.dashboard_url, "--working-dir", str(REPO), "--",
         "python", "jobs/encode_dataset.py", "--input", dataset.spec, "--output", str(out), *SMALL_CLIPS],
        env=ray_head.env, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]  # 1 unless the job succeeded
    assert shards_by_state(read_summary(out)) == (3, 3, 0, 0)
    assert len(read_rows(out)) == sum(len(k) for k in dataset.good.values())


# -- where the job runs: a dead cluster record, a dead address, a local output on several nodes --------------

def _env_without_ray_address(ray_head, **extra: str) -> dict[str, str]:
    return {**{k: v for k, v in ray_head.env.items() if k != "RAY_ADDRESS"}, **extra}


def _dead_address() -> str:
    from tests.support.ray_head import free_port

    return f"127.0.0.1:{free_port()}"  # nothing listens there


def test_a_ray_address_that_does_not_answer_fails_within_seconds(ray_head, dataset, tmp_path):
    dead = _dead_address()
    began = time.monotonic()
    result = run_cli(ray_head, "--input", dataset.spec, "--output", str(tmp_path / "out"), *SMALL_CLIPS,
                     "--ray-address", dead, env=_env_without_ray_address(ray_head), timeout=120, check=False)
    assert result.returncode == 1 and time.monotonic() - began < 30, result.stderr
    assert f"error: nothing answers at the Ray address '{dead}' (from --ray-address) within 3 s" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list((tmp_path / "out" / "_lease").glob("*.json"))  # the lease was given back


@pytest.mark.slow
def test_a_stale_cluster_record_starts_a_local_runtime(ray_head, dataset, tmp_path):
    ray_tmp = Path(tempfile.mkdtemp(prefix="rtd-", dir="/tmp"))  # short: Ray's socket paths have a length limit
    try:
        (ray_tmp / "ray").mkdir()
        dead = _dead_address()
        (ray_tmp / "ray" / "ray_current_cluster").write_text(dead)  # what a crashed runtime leaves behind
        out = tmp_path / "out"
        began = time.monotonic()
        result = run_cli(ray_head, "--input", dataset.spec, "--output", str(out), *SMALL_CLIPS, "--num-actors", "1",
                         env=_env_without_ray_address(ray_head, RAY_TMPDIR=str(ray_tmp)), timeout=300)
        assert "is stale, nothing answers there" in result.stdout and dead in result.stdout
        assert time.monotonic() - began < 240
        assert shards_by_state(read_summary(out)) == (3, 3, 0, 0)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.mark.slow
def test_a_local_output_on_a_multi_node_cluster_needs_shared_output(dataset, tmp_path):
    from ray.util.state import list_nodes

    from tests.support.ray_head import RAY, RayHead, free_port

    head = RayHead(num_cpus=2).start()
    worker = subprocess.Popen([RAY, "start", "--block", f"--address={head.address}", "--num-cpus=2",
                               f"--dashboard-agent-listen-port={free_port()}", "--disable-usage-stats"],
                              env={k: v for k, v in head.env.items() if k != "RAY_ADDRESS"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while len(list_nodes(address=head.dashboard_url, filters=[("state", "=", "ALIVE")])) < 2:  # (its HTTP API)
            assert time.monotonic() < deadline, "the second node did not join"
            time.sleep(0.5)
        out = tmp_path / "out"
        args = ["--input", dataset.spec, "--output", str(out), *SMALL_CLIPS, "--num-actors", "1"]
        refused = run_cli(head, *args, timeout=180, check=False)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert (f"error: --output: {out} is a local path, but the cluster has 2 nodes: each node would write its "
                "shards to its own disk") in refused.stderr and "--shared-output" in refused.stderr
        run_cli(head, *args, "--shared-output")
        assert shards_by_state(read_summary(out)) == (3, 3, 0, 0)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
        head.stop()
