"""A valid empty tar is committed as a shard with 0 rows and 0 errors, not TruncatedShard."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from .conftest import SMALL_CLIPS, read_output, run_cli, write_dataset


@pytest.mark.slow
def test_an_empty_tar_is_committed_with_zero_rows(ray_head, tmp_path):
    data = write_dataset(tmp_path / "shards", shards=2, samples=2)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w"):
        pass
    (data.folder / "part-000002.tar").write_bytes(buffer.getvalue())
    out = tmp_path / "out"
    result = run_cli(ray_head, "--input", str(data.folder / "part-{000000..000002}.tar"), "--output", str(out),
                     *SMALL_CLIPS)
    assert "3/3 committed" in result.stdout
    record = json.loads((out / "_committed" / "part-000002.json").read_text())
    assert record["rows"] == 0 and record["errors"] == 0 and record["samples"] == 0
    assert not [e for e in read_output(out, "errors") if e["shard"] == "part-000002"]
    assert len(read_output(out)) == 4
