"""`count_samples` reads a shard's headers only, and counts what `iter_samples` reads: the same
samples before any damage, and the same kind of damage, wherever the shard is cut or corrupted."""

from __future__ import annotations

import gzip

import pytest

from pipeline.reading import ErrorRecord, ReadConfig, Sample, count_samples, iter_samples
from tests.support.shards import corrupt_header, make_shard, members
from tests.support.videos import encode, index_frames

CONFIG = ReadConfig(resolution=(48, 64), num_frames=9)
SAMPLES = [{"__key__": f"k{i}", "mp4": encode(index_frames(12)), "txt": f"c{i}", "json": {"i": i}} for i in range(4)]


def read_whole(url: str, options=None) -> tuple[int, str | None]:
    """What the run reads: samples before any damage, and the damage's type."""
    items = list(iter_samples(url, CONFIG, options))
    shard_errors = [x for x in items if isinstance(x, ErrorRecord) and x.stage == "shard"]
    if shard_errors:
        (error,) = shard_errors
        return error.samples_read, error.error_type
    return sum(isinstance(x, Sample) for x in items), None


def counted(url: str, options=None) -> tuple[int, str | None]:
    count, problem = count_samples(url, CONFIG, options)
    return count, problem.error_type if problem else None


def cuts(shard: bytes) -> list[int]:
    """Every block boundary, and the middle of every member's data."""
    ends = set(range(0, len(shard), 512))
    ends.update(m.offset_data + m.size // 2 for m in members(shard))
    return sorted(ends)


def test_a_shard_cut_anywhere_counts_as_it_reads(tmp_path):
    shard = make_shard(SAMPLES)
    path = tmp_path / "cut.tar"
    seen = set()
    for end in cuts(shard):
        path.write_bytes(shard[:end])
        expected = read_whole(str(path))
        assert counted(str(path)) == expected, end
        seen.add(expected)
    assert {n for n, _ in seen} == {0, 1, 2, 3, 4}  # cuts before every sample, and in the end blocks


def test_whole_and_corrupt_shards(tmp_path):
    shard = make_shard(SAMPLES)
    cases = {"whole.tar": shard, "corrupt.tar": corrupt_header(shard, "k2.txt"), "empty.tar": b"",
             "whole.tar.gz": gzip.compress(shard), "cut.tar.gz": gzip.compress(shard)[:-3000]}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        assert counted(str(tmp_path / name)) == read_whole(str(tmp_path / name)), name
    assert counted(str(tmp_path / "whole.tar")) == (4, None)
    assert counted(str(tmp_path / "corrupt.tar")) == (2, "CorruptShard")
    assert counted(str(tmp_path / "missing.tar")) == (0, "FileNotFoundError")


@pytest.mark.parametrize("cut", [None, -7000])
def test_on_s3(local_s3, cut):
    local_s3.create_bucket("count")
    shard = make_shard(SAMPLES)
    url = local_s3.put("count", "000000.tar", shard[:cut])
    assert counted(url, local_s3.storage_options) == read_whole(url, local_s3.storage_options)
