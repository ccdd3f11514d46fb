"""--dry-run: shards by state, the output's fate, probed first samples and the estimate, without
Ray, weights or writes."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from pipeline.job.config import ConfigError, make_config
from pipeline.job.driver import Plan
from pipeline.job.dry_run import dry_run, format_dry_run
from pipeline.output.layout import OutputLayout
from pipeline.output.manifest import check_or_create, make_manifest
from pipeline.output.shard_writer import publish_shard
from pipeline.output.storage import write_json
from tests.job.conftest import REPO, TINY_MODEL
from tests.support.shards import make_shard
from tests.support.videos import encode, index_frames, random_bytes

SETTINGS = {"model": str(TINY_MODEL), "num_frames": 5, "resolution": "32x32", "latent_dtype": "float16"}


def job(dataset, out, **extra):
    return make_config({**SETTINGS, "input": dataset.spec, "output": str(out), **extra})


def start_output(config) -> OutputLayout:
    """The output folder as a real run of ``config`` on CPU creates it."""
    plan = Plan(config)
    settings = {**config.output_settings(), "dtype": "float32", "input_shards": plan.input_shards}
    check_or_create(plan.layout, make_manifest(config.public_dict(), settings, {"config": plan.model.to_dict()}))
    return plan.layout


def test_shards_output_state_probes_and_estimate(dataset, tmp_path):
    """3 shards: part-000000 committed, part-000001 given up, part-000002 never run."""
    out = tmp_path / "out"
    config = job(dataset, out)
    layout = start_output(config)
    publish_shard(layout, "part-000000", [], [], {}, {})
    write_json(layout.fs, layout.given_up("part-000001"), {"attempts": 3})
    before = sorted(p.relative_to(out) for p in out.rglob("*"))

    report = dry_run(config)
    assert report.output_state == "resumes"
    assert (report.committed, report.given_up) == (["part-000000"], ["part-000001"])
    assert report.to_encode == ["part-000001", "part-000002"]  # a run retries given-up shards
    assert [p.shard for p in report.probes] == ["part-000001", "part-000002"]
    for probe in report.probes:
        assert (probe.codec, probe.width, probe.height, probe.frames) == ("h264", 64, 48, 12)
        assert probe.fps == pytest.approx(25, rel=0.01) and probe.duration == pytest.approx(12 / 25, rel=0.01)
        assert probe.samples_in_shard == 5 and probe.key.endswith("v000")
        assert probe.clip_frames == [5] and probe.latent_shapes == [[4, 2, 4, 4]]
    estimate = report.estimate
    assert (estimate["samples"], estimate["clips"]) == (10, 10)  # broken samples are not known to be broken
    assert estimate["bytes_per_clip"] == 4 * 2 * 4 * 4 * 2 and estimate["bytes"] == 10 * 256
    text = format_dry_run(report)
    assert "to encode     2: part-000001, part-000002" in text and "h264 64x48" in text
    assert "latent [4, 2, 4, 4] float16 (mean)" in text and "~10 clips" in text
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before  # nothing written


def test_other_settings_are_refused_and_overwrite_starts_over(dataset, tmp_path):
    out = tmp_path / "out"
    first = job(dataset, out)
    layout = start_output(first)
    publish_shard(layout, "part-000000", [], [], {}, {})
    refused = dry_run(job(dataset, out, num_frames=9, clips="uniform:2"))
    assert refused.output_state.startswith("refused") and "num_frames: 5 then, 9 now" in refused.output_state
    over = dry_run(job(dataset, out, num_frames=9, overwrite=True))
    assert over.output_state.startswith("overwritten") and len(over.to_encode) == 3
    assert over.probes[0].clip_frames == [9] and over.probes[0].latent_shapes == [[4, 3, 4, 4]]


def test_unreadable_or_short_first_samples_are_reported(tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    (folder / "a.tar").write_bytes(make_shard([{"__key__": "bad", "mp4": random_bytes(3000, seed=1), "txt": "x"},
                                              {"__key__": "ok", "mp4": encode(index_frames(12)), "txt": "y"}]))
    (folder / "b.tar").write_bytes(make_shard([{"__key__": "short", "mp4": encode(index_frames(3)), "txt": "z"}]))
    report = dry_run(make_config({**SETTINGS, "input": str(folder / "*.tar"), "output": str(tmp_path / "o")}))
    bad, short = report.probes
    assert bad.key == "bad" and bad.problem.startswith("not a readable video") and bad.samples_in_shard == 2
    assert short.problem.startswith("VideoTooShort") and short.frames == 3 and not short.latent_shapes
    assert report.estimate["clips"] is None
    assert "would write   unknown" in format_dry_run(report)


def test_what_the_real_run_refuses_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="--input: .*no shards"):
        dry_run(make_config({**SETTINGS, "input": str(tmp_path / "*.tar"), "output": str(tmp_path / "o")}))


def test_the_cli_needs_no_ray(dataset, tmp_path):
    """With RAY_ADDRESS pointing nowhere, anything that started or joined Ray would fail or hang."""
    out = tmp_path / "out"
    env = {**os.environ, "RAY_ADDRESS": "127.0.0.1:9", "PYTHONPATH": str(REPO)}
    began = time.monotonic()
    result = subprocess.run([sys.executable, str(REPO / "jobs" / "encode_dataset.py"), "--dry-run", "--input",
                             dataset.spec, "--output", str(out), "--model", str(TINY_MODEL), "--num-frames", "5",
                             "--resolution", "32x32"], capture_output=True, text=True, env=env, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - began < 60
    assert "dry run: nothing is encoded" in result.stdout and "to encode     3" in result.stdout
    assert not out.exists()
    bad = subprocess.run([sys.executable, str(REPO / "jobs" / "encode_dataset.py"), "--dry-run", "--model",
                          str(tmp_path / "nowhere")], capture_output=True, text=True, env=env, timeout=120, cwd=REPO)
    assert bad.returncode == 2 and "--model:" in bad.stderr




def test_shards_and_model_on_s3(dataset, local_s3, tmp_path):
    local_s3.create_bucket("dry-run")
    for path in sorted(dataset.folder.glob("*.tar")):
        local_s3.put("dry-run", f"shards/{path.name}", path.read_bytes())
    for path in TINY_MODEL.iterdir():
        local_s3.put("dry-run", f"model/{path.name}", path.read_bytes())
    config = make_config({**SETTINGS, "input": "s3://dry-run/shards/part-{000000..000002}.tar",
                          "output": "s3://dry-run/out", "model": "s3://dry-run/model/",
                          "storage_options": local_s3.storage_options})
    report = dry_run(config)
    assert report.output_state == "new" and len(report.to_encode) == 3
    assert [p.samples_in_shard for p in report.probes] == [5, 5, 5]
    assert all(p.latent_shapes == [[4, 2, 4, 4]] for p in report.probes)
    assert report.estimate["clips"] == 15
