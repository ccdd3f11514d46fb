"""Shard specs and tar streaming, on local disk and on S3 (moto's server on 127.0.0.1)."""

from __future__ import annotations

import gzip
import io

import numpy as np
import pytest

from pipeline.reading import ErrorRecord, SampleError, list_shards
from pipeline.reading.shards import open_shard, tar_members
from tests.support.shards import corrupt_header, cut_before, cut_inside, make_shard

SAMPLES = [{"__key__": f"s{i}", "txt": f"caption {i}", "json": {"i": i}} for i in range(3)]


@pytest.fixture
def shard_dir(tmp_path):
    for i in range(5):
        (tmp_path / f"shard-{i:06d}.tar").write_bytes(make_shard(SAMPLES))
    (tmp_path / "notes.md").write_text("not a shard")
    return tmp_path


def test_brace_ranges_expand_without_listing(tmp_path):
    urls = list_shards(str(tmp_path / "shards" / "{000000..000002}.tar"))
    assert urls == [str(tmp_path / "shards" / f"{i:06d}.tar") for i in range(3)]  # not checked for existence
    assert list_shards(f"file://{tmp_path}/shards/{{000001..000002}}.tar") == urls[1:]  # same URLs, no scheme


def test_globs_sort_and_dedupe(shard_dir):
    expected = [str(shard_dir / f"shard-{i:06d}.tar") for i in range(5)]
    assert list_shards(str(shard_dir / "*.tar")) == expected
    overlapping = [str(shard_dir / "shard-00000[0-2].tar"), f"file://{shard_dir}/shard-*.tar", str(shard_dir / "shard-000004.tar")]
    assert list_shards(overlapping) == expected


def test_list_file_with_relative_entries_and_comments(shard_dir):
    (shard_dir / "shards.txt").write_text(
        "# training shards\n\nshard-000003.tar\n" f"{shard_dir}/shard-00000{{0..1}}.tar\n" "shard-000001.tar\n"
    )
    assert list_shards(str(shard_dir / "shards.txt")) == [str(shard_dir / f"shard-{i:06d}.tar") for i in (0, 1, 3)]


def test_nothing_matching_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no shards match"):
        list_shards(str(tmp_path / "*.tar"))


def test_s3_globs_braces_and_list_files(local_s3):
    local_s3.create_bucket("specs")
    for i in range(4):
        local_s3.put("specs", f"train/{i:06d}.tar", make_shard(SAMPLES))
    local_s3.put("specs", "train/README", b"x")
    local_s3.put("specs", "lists/train.txt", b"s3://specs/train/000003.tar\n../train/000000.tar\n")
    options = local_s3.storage_options
    assert list_shards("s3://specs/train/*.tar", options) == [f"s3://specs/train/{i:06d}.tar" for i in range(4)]
    assert list_shards("s3://specs/train/{000001..000002}.tar", options) == ["s3://specs/train/000001.tar", "s3://specs/train/000002.tar"]
    assert list_shards("s3://specs/lists/train.txt", options) == ["s3://specs/train/000000.tar", "s3://specs/train/000003.tar"]


def test_s3_shards_are_streamed_not_downloaded(local_s3):
    local_s3.create_bucket("stream")
    shard = make_shard([{"__key__": f"{i:03d}", "bin": np.random.default_rng(i).bytes(65536)} for i in range(40)])
    url = local_s3.put("stream", "big.tar", shard)
    with open_shard(url, local_s3.storage_options, block_size=256 * 1024) as stream:
        members = tar_members(stream)
        assert [next(members)[0] for _ in range(2)] == ["000.bin", "001.bin"]
        fetched = stream.cache.total_requested_bytes
    assert len(shard) > 2_500_000 and fetched < 400_000


# -- tar streaming and damage ---------------------------------------------------------------


def read_members(data: bytes) -> tuple[list[str], ErrorRecord | None]:
    names = []
    try:
        for name, _ in tar_members(io.BytesIO(data)):
            names.append(name)
    except SampleError as damage:
        assert damage.record.stage == "shard"
        return names, damage.record
    return names, None


ALL = ["s0.json", "s0.txt", "s1.json", "s1.txt", "s2.json", "s2.txt"]


def test_complete_tar_and_gzipped_tar():
    shard = make_shard(SAMPLES)
    assert read_members(shard) == (ALL, None)
    assert read_members(gzip.compress(shard)) == (ALL, None)


def test_cut_inside_a_member():
    names, damage = read_members(cut_inside(make_shard(SAMPLES), "s1.txt"))
    assert names == ALL[:3]
    assert (damage.error_type, damage.key) == ("TruncatedShard", "s1")  # the sample it cut into


def test_cut_between_members_is_noticed():
    # tarfile (and so webdataset) would end here silently: no end-of-archive block
    names, damage = read_members(cut_before(make_shard(SAMPLES), "s2.json"))
    assert names == ALL[:4]
    assert (damage.error_type, damage.key) == ("TruncatedShard", None)
    assert "without an end-of-archive block" in damage.message


def test_corrupt_header_in_the_middle_is_noticed():
    names, damage = read_members(corrupt_header(make_shard(SAMPLES), "s1.txt"))
    assert names == ALL[:3]
    assert damage.error_type == "CorruptShard" and "invalid tar header" in damage.message


def test_cut_gzipped_tar():
    names, damage = read_members(gzip.compress(make_shard(SAMPLES))[:-200])
    assert damage is not None and damage.error_type in ("TruncatedShard", "CorruptShard")
    assert names == ALL[: len(names)]


@pytest.mark.parametrize(("data", "error_type"), [(b"", "CorruptShard"), (b"\x00" * 10, "CorruptShard"), (b"garbage" * 300, "CorruptShard")])
def test_not_a_tar(data, error_type):
    names, damage = read_members(data)
    assert names == [] and damage.error_type == error_type
