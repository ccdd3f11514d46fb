"""A valid tar with no members is an empty shard, not damage (issue 10, finding 4)."""

from __future__ import annotations

import io

import pytest

from pipeline.reading import ReadConfig, SampleError, read_shard
from pipeline.reading.shards import tar_members
from tests.support.shards import make_shard

EMPTY = make_shard([])  # what tarfile writes for no members: two zero blocks, padded to 10 KiB


@pytest.mark.parametrize("data", [EMPTY, EMPTY[:1024]], ids=["padded", "two-zero-blocks"])
def test_a_valid_empty_tar_has_no_members_and_no_damage(data, tmp_path):
    assert list(tar_members(io.BytesIO(data))) == []
    (tmp_path / "empty.tar").write_bytes(data)
    assert list(read_shard(str(tmp_path / "empty.tar"), ReadConfig(resolution=(32, 32)))) == []


@pytest.mark.parametrize("data, damage", [(b"", "empty file"), (b"\0" * 100, "truncated header")])
def test_an_empty_or_cut_file_is_still_damage(data, damage):
    with pytest.raises(SampleError, match=damage):
        list(tar_members(io.BytesIO(data)))
