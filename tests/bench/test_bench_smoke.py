"""Each benchmark's ``--tiny`` run (tiny model, smallest sizes), so that none of them rots unseen.

Every script runs in a subprocess of its own session with a timeout: a hang kills the script and
whatever it started, and fails the test. The checks are on the figures each run wrote (present,
finite, positive where they are times or rates, as many as were asked for), not on its wording.
The timings themselves mean nothing here.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 90  # seconds per script; each takes 2-8 s on a 2-core machine


def run_bench(script: str, *args: str) -> dict:
    """``bench/SCRIPT --tiny ARGS --out FILE``; the JSON it wrote."""
    out = Path(args[args.index("--out") + 1])
    command = [sys.executable, str(REPO / "bench" / script), "--tiny", *args]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the script and the children it started
        stdout, stderr = process.communicate()
        pytest.fail(f"{' '.join(command[1:])} still running after {TIMEOUT} s:\n{stderr[-3000:]}")
    assert process.returncode == 0, f"{' '.join(command[1:])} exited {process.returncode}:\n{stderr[-3000:]}"
    return json.loads(out.read_text())


def positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def test_canary(tmp_path):
    report = run_bench("canary.py", "--out", str(tmp_path / "canary.json"))
    config = report["config"]
    assert (config["num_frames"], config["resolution"], config["batch_size"], config["rounds"]) == ("9", "32", "2", "1")
    assert Path(config["model"]).name == "tiny-4x"
    assert positive(report["encode_seconds_per_clip"])
    for figure in ("check_seconds_per_clip", "check_over_encode", "encoder_time_share_at_100"):
        assert set(report[figure]) == {"one_at_a_time", "batched"}, figure
        assert all(positive(v) for v in report[figure].values()), (figure, report[figure])
    assert positive(report["psnr_db"])


def test_decode(tmp_path):
    report = run_bench("decode.py", "--work", str(tmp_path / "sources"), "--out", str(tmp_path / "decode.json"))
    cases = report["cases"]
    assert [(c["height"], c["gop"], c["clips"]) for c in cases] == \
        [(144, gop, clips) for gop in (250, 30) for clips in ("first", "uniform:1")]
    for case in cases:
        assert isinstance(case["bare_frames"], int) and case["bare_frames"] > 0, case
        assert isinstance(case["pyav_frames"], int) and case["pyav_frames"] > 0, case
        assert set(case["ms"]) == {"bare", "pyav", "decord"} and all(positive(v) for v in case["ms"].values()), case
        assert set(case["over_bare"]) == set(case["psnr_db"]) == {"pyav", "decord"}, case
        assert all(positive(v) for v in [*case["over_bare"].values(), *case["psnr_db"].values()]), case
        assert positive(case["pyav_clips_per_s"]), case
    assert list(report["planning"]) == ["144"]
    assert len(report["planning"]["144"]) == 4 and all(positive(v) for v in report["planning"]["144"])
    length = report["length"]  # a first clip from the 144p GOP 250 source and from it remuxed 8x
    assert len(length) == 4 and {r["decoder"] for r in length} == {"pyav", "decord"}
    assert len({r["source"] for r in length}) == 2 and all(positive(r["ms"]) for r in length)


def test_model_points(tmp_path):
    # bf16: also the reference fp32 model and the relative error each point reports
    report = run_bench("model.py", "--dtype", "bf16", "--out", str(tmp_path / "model.json"))
    rows = report["results"]
    assert [(r["mode"], r["frames"], r["size"], r["chunk_frames"]) for r in rows] == \
        [("full", 9, 32, None), ("chunked", 9, 32, 8)], rows
    for row in rows:
        assert "error" not in row, row
        assert positive(row["seconds"]) and positive(row["frames_per_s"]), row
        # ~0 MiB at these sizes, give or take a page the allocator gave back
        assert finite(row["peak_mib_above_baseline"]) and row["peak_mib_above_baseline"] > -1, row
        assert row["latent_shape"] == [4, 3, 4, 4], row  # tiny-4x: 4 channels, 1 + 8/4 frames, 32/8
        assert positive(row["rel_error_vs_fp32"]), row


def test_model_stream(tmp_path):
    # "drop" is "list" without the append: these two run every line of the streaming path
    report = run_bench("model.py", "--stream", "--keeps", "feed", "list", "--out", str(tmp_path / "stream.json"))
    rows = report["results"]
    assert [r.get("keep") for r in rows] == ["feed", "list"], rows
    for row in rows:
        assert "error" not in row, row
        assert (row["frames"], row["size"], row["chunk_frames"], row["latent_frames"]) == (601, 32, 8, 151), row
        # a window per 300 frames pushed (1, then 8 at a time)
        assert [w["frames"] for w in row["windows"]] == [305, 601], row
        assert all(positive(w["peak_rss_anon_mib"]) for w in row["windows"]), row
        for figure in ("seconds", "frames_per_s", "baseline_rss_anon_mib", "closing_peak_rss_anon_mib"):
            assert positive(row[figure]), (figure, row)
        assert finite(row["growth"]), row


def test_precision(tmp_path):
    report = run_bench("precision.py", "--out", str(tmp_path / "precision.json"))
    assert report["latent_shape"] == [4, 3, 4, 4]  # 9x32x32 through tiny-4x
    rows = report["results"]
    assert [r["precision"] for r in rows] == ["bf16 weights", "fp16 weights", "fp32 weights, bf16 autocast"]
    for row in rows:
        assert positive(row["rel_error"]) and positive(row["worst_channel_rel_error"]), row


def test_pipeline(tmp_path):
    """The real job on a local Ray instance beside its two sides alone: every step runs."""
    report = run_bench("pipeline.py", "--out", str(tmp_path / "pipeline.json"))
    assert Path(report["config"]["model"]).name == "tiny-4x" and report["config"]["shards"] == 2
    for side in ("decode_capacity", "encode_capacity"):
        assert positive(report[side]["clips_per_second"]), report[side]
    assert positive(report["decode_capacity_beside_encoder"]["clips_per_second"])
    job = report["job"]
    assert job["clips"] == 2 and job["errors"] == 0 and job["balance"]["limit"] in ("decode", "encode", "input",
                                                                                     "balanced")
    assert positive(job["wall_seconds_with_startup"]) and positive(report["ratio_to_bound"])


def test_scale(tmp_path):
    """The driver's work at fabricated sizes, locally and on S3, and the resume after a killed run."""
    out = tmp_path / "scale.json"
    command = [sys.executable, str(REPO / "bench" / "scale.py"), "--tiny", "--out", str(out)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert [(row["storage"], row["stage"], row["shards"]) for row in rows] == [
        ("local", "plan", 100), ("local", "dry-run", 100), ("local", "resume", 100),
        ("local, a run killed", "resume", 100),
        ("s3 (moto)", "plan", 20), ("s3 (moto)", "dry-run", 20), ("s3 (moto)", "resume", 20)]
    assert all(positive(row["seconds"]) and positive(row["peak_mib"]) for row in rows), rows
    # a finished run's file settles every shard; after a kill, the commits since its last update are read
    assert [row["records_read"] for row in rows if row["stage"] == "resume"] == [0, 22, 0]
    assert all(positive(row["requests"]) for row in rows if row["storage"] == "s3 (moto)"), rows
