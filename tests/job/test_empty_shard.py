"""A valid empty tar is committed as a shard with 0 rows and 0 errors, not TruncatedShard."""

from __future__ import annotations

import json

import pytest

from tests.support.jobs import SMALL_CLIPS, run_cli
from tests.support.outputs import read_rows, read_summary, shards_by_state
from tests.support.shards import write_shards


@pytest.mark.slow
def test_an_empty_tar_is_committed_with_zero_rows(ray_head, tmp_path):
    data = write_shards(tmp_path / "shards", [2, 2, 0])
    out = tmp_path / "out"
    run_cli(ray_head, "--input", data.spec, "--output", str(out), *SMALL_CLIPS)
    assert shards_by_state(read_summary(out)) == (3, 3, 0, 0)
    record = json.loads((out / "_committed" / "part-000002.json").read_text())
    assert record["rows"] == 0 and record["errors"] == 0 and record["samples"] == 0
    assert not [e for e in read_rows(out, "errors") if e["shard"] == "part-000002"]
    assert len(read_rows(out)) == 4
