"""The same job spelled differently resumes; a different one is refused. The model is identified by its
config and weights, never by how its path was written; the input's shards are not part of the identity."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.support.jobs import SMALL_CLIPS, TINY_MODEL, run_cli
from tests.support.outputs import read_rows, shard_counts

CLIPS = [a for a in SMALL_CLIPS if a not in ("--model", str(TINY_MODEL))]


@pytest.mark.slow
def test_same_job_spelled_differently_resumes_and_a_different_one_is_refused(ray_head, dataset, tmp_path):
    out = tmp_path / "out"
    run_cli(ray_head, "--input", dataset.spec, "--output", str(out), "--model", f"{TINY_MODEL}/", *CLIPS)
    (out / "_committed" / "part-000002.json").unlink()  # one shard left to do
    copy = tmp_path / "model-copy"
    shutil.copytree(TINY_MODEL, copy)
    glob = str(dataset.folder / "part-*.tar")
    run_cli(ray_head, "--input", glob, "--output", str(out), "--model", str(copy), *CLIPS)
    assert shard_counts(out) == (3, 2, 1)  # resumed, not started over
    assert len(read_rows(out)) == sum(len(k) for k in dataset.good.values())

    # the input's shards are not part of the output's identity: a smaller (or larger) input resumes
    run_cli(ray_head, "--input", str(dataset.folder / "part-00000[01].tar"), "--output", str(out), "--model", str(copy),
            *CLIPS)
    assert shard_counts(out) == (2, 2, 0)

    config = json.loads((copy / "config.json").read_text())
    config["scale"] = [2 * value for value in config["scale"]]  # a different normalisation: a different job
    (copy / "config.json").write_text(json.dumps(config))
    other_model = run_cli(ray_head, "--input", glob, "--output", str(out), "--model", str(copy), *CLIPS, check=False)
    assert other_model.returncode == 2 and "the model's config differs" in other_model.stderr

