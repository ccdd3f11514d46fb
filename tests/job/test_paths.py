"""What a user types is what happens: relative paths, folders as input, ``ray job submit``, a model that
does not load. Run against the session's Ray head, which was started apart from these processes (in
another folder)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.support.jobs import REPO, SMALL_CLIPS, TINY_MODEL, run_cli
from tests.support.outputs import read_rows, read_summary, shards_by_state

SIZES = [a for a in SMALL_CLIPS if a not in ("--model", str(TINY_MODEL))]


@pytest.mark.slow
def test_relative_paths_mean_the_folder_the_command_was_typed_in(ray_head, dataset, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(dataset.folder, work / "shards")
    shutil.copytree(TINY_MODEL, work / "models" / "tiny")
    run_cli(ray_head, "--input", "shards", "--output", "out/rel", "--model", "models/tiny", *SIZES, cwd=work)
    out = work / "out" / "rel"
    assert sorted(p.stem for p in (out / "_committed").glob("*.json")) == sorted(dataset.good)
    assert len(read_rows(out)) == sum(len(keys) for keys in dataset.good.values())
    job = json.loads((out / "_job.json").read_text())
    assert job["config"]["output"] == str(out) and job["config"]["model"] == str(work / "models" / "tiny")


def test_an_empty_folder_as_input_is_refused_before_ray(ray_head, tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_cli(ray_head, "--input", "empty", "--output", "out", *SMALL_CLIPS, cwd=tmp_path, timeout=60,
                     check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"--input: the folder '{tmp_path / 'empty'}' holds no shards" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_ray_job_submit_refuses_an_output_inside_rays_copy_of_the_working_dir(ray_head, dataset, tmp_path):
    ray = REPO / ".venv" / "bin" / "ray"
    result = subprocess.run(
        [str(ray) if ray.exists() else "ray", "job", "submit", "--address", ray_head.dashboard_url,
         "--working-dir", str(REPO), "--", "python", "jobs/encode_dataset.py", "--input", dataset.spec,
         "--output", "out/rel", *SMALL_CLIPS],
        env=ray_head.env, capture_output=True, text=True, timeout=300, cwd=REPO)
    text = result.stdout + result.stderr
    assert result.returncode != 0, text[-3000:]
    assert "inside Ray's temporary folders" in text and "s3://" in text
    assert "Traceback" not in text


def test_a_model_that_does_not_load_ends_the_job_with_one_line(ray_head, dataset, tmp_path):
    """Weights cut short are refused before anything starts (exit 2, nothing written); weights that are whole
    but do not fit their config.json are found when an encoder loads them (exit 1): one line each."""
    out = tmp_path / "out"
    cut, mismatched = tmp_path / "cut", tmp_path / "mismatched"
    for model in (cut, mismatched):
        shutil.copytree(TINY_MODEL, model)
    weights = next(cut.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:30000])
    config = json.loads((mismatched / "config.json").read_text())
    (mismatched / "config.json").write_text(json.dumps({**config, "base_channels": config["base_channels"] * 2}))
    for model, status, words in ((cut, 2, "cut short"), (mismatched, 1, "could not load the model")):
        result = run_cli(ray_head, "--input", dataset.spec, "--output", str(out),
                         *[str(model) if a == str(TINY_MODEL) else a for a in SMALL_CLIPS], check=False, timeout=180)
        assert result.returncode == status, result.stdout[-3000:] + result.stderr[-3000:]
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and words in errors[0] and str(model) in errors[0], result.stderr
        assert "Fatal Python error" not in result.stderr and "Traceback" not in result.stderr
        if status == 2:
            assert not out.exists()  # the run checks the model before it writes anything


@pytest.mark.slow
def test_a_finished_output_is_answered_without_starting_ray(ray_head, dataset, tmp_path):
    out = tmp_path / "out"
    run_cli(ray_head, "--input", dataset.spec, "--output", str(out), *SMALL_CLIPS)
    before = {p.name: p.stat().st_mtime_ns for p in (out / "latents").iterdir()}
    # An address where nothing answers: the re-run would fail at once if it tried to join a cluster.
    from tests.support.ray_head import free_port

    dead = f"127.0.0.1:{free_port()}"
    run_cli(ray_head, "--input", dataset.spec, "--output", str(out), *SMALL_CLIPS, "--ray-address", dead, timeout=60)
    summary = read_summary(out)
    assert shards_by_state(summary) == (3, 3, 0, 0)
    assert summary["this_run"]["shards_encoded"] == 0 and summary["this_run"]["shards_skipped"] == 3
    assert summary["clips"] == sum(len(keys) for keys in dataset.good.values())
    assert {p.name: p.stat().st_mtime_ns for p in (out / "latents").iterdir()} == before
