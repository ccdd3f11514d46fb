"""Shard specs and tar streaming, on local disk and on S3 (moto's server on 127.0.0.1)."""

from __future__ import annotations

import gzip
import io
import logging

import numpy as np
import pytest

from pipeline.reading import ErrorRecord, SampleError, list_shards
from pipeline.reading.shards import ShardList, open_shard, tar_members
from tests.support.shards import corrupt_header, cut_before, cut_inside, make_shard

SAMPLES = [{"__key__": f"s{i}", "txt": f"caption {i}", "json": {"i": i}} for i in range(3)]
SHARD = make_shard(SAMPLES)


@pytest.fixture
def shard_dir(tmp_path):
    for i in range(5):
        (tmp_path / f"shard-{i:06d}.tar").write_bytes(make_shard(SAMPLES))
    (tmp_path / "notes.md").write_text("not a shard")
    return tmp_path


def test_brace_ranges_expand_to_the_shards_that_exist(shard_dir):
    expected = [str(shard_dir / f"shard-{i:06d}.tar") for i in range(3)]
    assert list_shards(str(shard_dir / "shard-{000000..000002}.tar")) == ShardList(expected, [])
    assert list_shards(f"file://{shard_dir}/shard-{{000001..000002}}.tar").urls == expected[1:]  # no scheme


def test_globs_sort_and_dedupe(shard_dir):
    expected = [str(shard_dir / f"shard-{i:06d}.tar") for i in range(5)]
    assert list_shards(str(shard_dir / "*.tar")).urls == expected
    overlapping = [str(shard_dir / "shard-00000[0-2].tar"), f"file://{shard_dir}/shard-*.tar", str(shard_dir / "shard-000004.tar")]
    assert list_shards(overlapping).urls == expected


def test_list_file_with_relative_entries_and_comments(shard_dir):
    (shard_dir / "shards.txt").write_text(
        "# training shards\n\nshard-000003.tar\n" f"{shard_dir}/shard-00000{{0..1}}.tar\n" "shard-000001.tar\n"
    )
    assert list_shards(str(shard_dir / "shards.txt")).urls == [str(shard_dir / f"shard-{i:06d}.tar") for i in (0, 1, 3)]


def test_nothing_matching_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no shards match .*: the glob lists no files; an input is a shard file"):
        list_shards(str(tmp_path / "*.tar"))


# -- inputs checked before anything starts (issue 27) ----------------------------------------


def part_files(folder, present: range, total: int = 6, data: bytes = SHARD) -> str:
    """part-00000.tar ... in `folder`, only those in `present`; returns the brace range naming `total`."""
    folder.mkdir(exist_ok=True)
    for i in present:
        (folder / f"part-{i:05d}.tar").write_bytes(data)
    return str(folder / f"part-{{00000..{total - 1:05d}}}.tar")


def test_an_input_that_does_not_exist_is_refused_naming_it(tmp_path):
    part_files(tmp_path / "shards", range(3))
    typo = str(tmp_path / "shardz")
    with pytest.raises(ValueError, match=rf"^no shards at '{typo}': no such file or folder; an input is a shard file, "
                                         r"a folder of shards \(\.tar, \.tar\.gz, \.tgz\), a brace range"):
        list_shards(typo)
    with pytest.raises(ValueError, match="no such file or folder"):
        list_shards(str(tmp_path / "shards" / "part-00009.tar"))


def test_a_brace_range_with_members_missing_is_refused_naming_how_many_and_the_first(tmp_path):
    spec = part_files(tmp_path / "shards", range(3))  # part-{00000..00005}.tar where 3 exist
    missing = [str(tmp_path / "shards" / f"part-{i:05d}.tar") for i in (3, 4, 5)]
    with pytest.raises(ValueError) as refused:
        list_shards(spec)
    message = str(refused.value)
    looked = "(looked for in 1 listing(s) of their folders)"
    assert message.startswith(f"3 of the 6 shards {spec!r} names do not exist {looked}: ")
    assert ", ".join(repr(m) for m in missing) in message and "allow missing shards" in message


def test_missing_members_allowed_are_named_in_the_result(tmp_path):
    spec = part_files(tmp_path / "shards", range(0, 6, 2), total=6)
    present = [str(tmp_path / "shards" / f"part-{i:05d}.tar") for i in (0, 2, 4)]
    missing = [str(tmp_path / "shards" / f"part-{i:05d}.tar") for i in (1, 3, 5)]
    assert list_shards(spec, allow_missing=True) == ShardList(present, missing)


def test_a_refusal_names_the_first_five_missing_of_many(tmp_path):
    spec = part_files(tmp_path / "shards", range(1), total=40)
    with pytest.raises(ValueError, match=r"^39 of the 40 shards .* \(looked for in 1 listing\(s\) of their folders\): "
                                         r"'[^']*part-00001.tar', .*'[^']*part-00005.tar', \.\.\.; fix the input"):
        list_shards(spec)


def test_none_existing_is_refused_even_when_missing_members_are_allowed(tmp_path):
    spec = part_files(tmp_path / "shards", range(0))
    with pytest.raises(ValueError, match=r"^no shards: none of the 6 shards .* names exist"):
        list_shards(spec, allow_missing=True)
    with pytest.raises(ValueError, match=r"^no shards: none of the 3 shards"):
        list_shards(str(tmp_path / "elsewhere" / "part-{0..2}.tar"), allow_missing=True)  # no such folder either


def test_a_list_file_with_entries_missing(tmp_path):
    part_files(tmp_path / "a", range(2))
    part_files(tmp_path / "b", range(1))
    (tmp_path / "train.txt").write_text("a/part-00000.tar\na/part-00001.tar\na/part-00002.tar\nb/part-00000.tar\n"
                                        "b/part-00007.tar\nc/part-00000.tar\nb/*.tgz\n")
    spec = str(tmp_path / "train.txt")
    with pytest.raises(ValueError, match=r"^4 of the 7 shards .* \(looked for in 3 listing\(s\) of their folders\)"):
        list_shards(spec)  # a and b listed once each, c looked at once; the glob lists b again
    listed = list_shards(spec, allow_missing=True)
    assert listed.urls == [str(tmp_path / f) for f in ("a/part-00000.tar", "a/part-00001.tar", "b/part-00000.tar")]
    assert listed.missing == [str(tmp_path / f) for f in ("a/part-00002.tar", "b/part-00007.tar", "c/part-00000.tar",
                                                          "b/*.tgz")]
    with pytest.raises(ValueError, match=r"^the list file '.*nope\.txt' does not exist; an input is"):
        list_shards(str(tmp_path / "nope.txt"))


def test_a_brace_range_of_folders(tmp_path):
    part_files(tmp_path / "day1", range(2))
    part_files(tmp_path / "day2", range(1))
    listed = list_shards(str(tmp_path / "day{1..3}"), allow_missing=True)
    found = ("day1/part-00000.tar", "day1/part-00001.tar", "day2/part-00000.tar")
    assert listed.urls == [str(tmp_path / f) for f in found]
    assert listed.missing == [str(tmp_path / "day3")]


def test_one_listing_checks_ten_thousand_names(tmp_path):
    """The check is a listing of the folder, not a look per name (the message says how many were made)."""
    spec = part_files(tmp_path / "shards", range(9_999), total=10_000, data=b"")  # only names are looked at
    with pytest.raises(ValueError, match=r"^1 of the 10000 shards .* \(looked for in 1 listing\(s\) of their "
                                         r"folders\): '[^']*part-09999.tar'; fix"):
        list_shards(spec)
    assert len(list_shards(spec, allow_missing=True).urls) == 9_999


def test_s3_globs_braces_and_list_files(local_s3):
    local_s3.create_bucket("specs")
    for i in range(4):
        local_s3.put("specs", f"train/{i:06d}.tar", make_shard(SAMPLES))
    local_s3.put("specs", "train/README", b"x")
    local_s3.put("specs", "lists/train.txt", b"s3://specs/train/000003.tar\n../train/000000.tar\n")
    options = local_s3.storage_options
    assert list_shards("s3://specs/train/*.tar", options).urls == [f"s3://specs/train/{i:06d}.tar" for i in range(4)]
    braced = list_shards("s3://specs/train/{000001..000002}.tar", options)
    assert braced.urls == ["s3://specs/train/000001.tar", "s3://specs/train/000002.tar"]
    listed = list_shards("s3://specs/lists/train.txt", options)
    assert listed.urls == ["s3://specs/train/000000.tar", "s3://specs/train/000003.tar"]


def test_s3_inputs_that_list_nothing_are_refused(local_s3):
    local_s3.create_bucket("typos")
    for i in range(3):
        local_s3.put("typos", f"shards/part-{i:05d}.tar", make_shard(SAMPLES))
    options = local_s3.storage_options
    with pytest.raises(ValueError, match=r"^no shards at 's3://typos/shardz': no such file or folder; an input is"):
        list_shards("s3://typos/shardz", options)
    with pytest.raises(ValueError, match=r"^no shards match 's3://typos/shards/\*\.tgz': the glob lists no files"):
        list_shards("s3://typos/shards/*.tgz", options)
    with pytest.raises(ValueError, match=r"no such file or folder"):
        list_shards("s3://typos/shards/part-00003.tar", options)


def test_s3_brace_range_and_list_file_with_members_missing(local_s3):
    local_s3.create_bucket("gaps")
    for i in range(3):
        local_s3.put("gaps", f"shards/part-{i:05d}.tar", make_shard(SAMPLES))
    local_s3.put("gaps", "train.txt", b"shards/part-00000.tar\nshards/part-00004.tar\nother/part-00000.tar\n")
    options = local_s3.storage_options
    spec = "s3://gaps/shards/part-{00000..00005}.tar"
    with pytest.raises(ValueError, match=r"^3 of the 6 shards .* names do not exist \(looked for in 1 listing\(s\) of "
                                         r"their folders\): 's3://gaps/shards/part-00003.tar', "
                                         r"'s3://gaps/shards/part-00004.tar', 's3://gaps/shards/part-00005.tar'; fix"):
        list_shards(spec, options)
    names = [f"s3://gaps/shards/part-{i:05d}.tar" for i in range(6)]
    assert list_shards(spec, options, allow_missing=True) == ShardList(names[:3], names[3:])
    listed = list_shards("s3://gaps/train.txt", options, allow_missing=True)
    assert listed == ShardList(["s3://gaps/shards/part-00000.tar"],
                               ["s3://gaps/shards/part-00004.tar", "s3://gaps/other/part-00000.tar"])


def test_s3_names_are_checked_with_a_request_per_thousand(local_s3, s3_requests):
    """2,500 names in one folder: the listing's three pages, not 2,500 requests."""
    from moto.backends import get_backend

    local_s3.create_bucket("many")
    backend = get_backend("s3")["123456789012"]["global"]
    for i in range(2_500):
        backend.put_object("many", f"shards/part-{i:05d}.tar", b"")
    s3_requests.clear()
    listed = list_shards("s3://many/shards/part-{00000..02499}.tar", local_s3.storage_options)
    assert len(listed.urls) == 2_500
    lists = [r for r in s3_requests if "list-type=2" in r]
    assert len(lists) == 3 and len(s3_requests) == 3, s3_requests


@pytest.fixture
def s3_requests():
    """The requests moto's server answers, one line each (its werkzeug log), while the test runs."""
    requests: list[str] = []

    class Note(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            requests.append(record.getMessage())

    log = logging.getLogger("werkzeug")
    saved = (log.handlers[:], log.propagate, log.level)
    log.handlers[:] = [Note()]
    log.propagate = False
    log.setLevel(logging.INFO)
    try:
        yield requests
    finally:
        log.handlers[:], log.propagate = saved[0], saved[1]
        log.setLevel(saved[2])


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
