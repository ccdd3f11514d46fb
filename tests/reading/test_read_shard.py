"""Shards to samples to clips, from local disk and from S3, good and broken."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from pipeline.reading import Clip, ErrorRecord, ReadConfig, Sample, iter_samples, read_shard
from tests.support.shards import corrupt_header, cut_before, cut_inside, make_shard
from tests.support.videos import encode, index_frames, read_index

CONFIG = ReadConfig(resolution=(48, 64), num_frames=9, clips="all")

# What the mixed shard (conftest.py) must give: clips per good sample, a record per bad one.
EXPECTED = [
    ("clip", "good-a", [list(range(0, 9)), list(range(9, 18)), list(range(18, 27)), list(range(27, 36))]),
    ("error", "no-video", ("sample", "NoMediaPart")),
    ("error", "empty", ("decode", "EmptyVideo")),
    ("error", "garbage", ("decode", "UnreadableVideo")),
    ("error", "too-short", ("clip", "VideoTooShort")),
    ("clip", "good-b", [list(range(0, 9)), list(range(9, 18))]),
]


def check_mixed_shard(items: list, shard_url: str) -> None:
    assert all(isinstance(x, (Clip, ErrorRecord)) for x in items)
    got = []
    for item in items:
        if isinstance(item, ErrorRecord):
            assert item.shard == shard_url and item.message
            got.append(("error", item.key, (item.stage, item.error_type)))
        elif got and got[-1][0] == "clip" and got[-1][1] == item.info.key:
            got[-1][2].append(item.info.frame_indices)
        else:
            got.append(("clip", item.info.key, [item.info.frame_indices]))
    assert got == EXPECTED
    for clip in (x for x in items if isinstance(x, Clip)):
        assert clip.info.shard == shard_url
        assert read_index(clip.frames) == clip.info.frame_indices
    a = next(x for x in items if isinstance(x, Clip) and x.info.key == "good-a")
    assert (a.info.caption, a.info.meta) == ("a caption", '{"id": 1}')


def test_read_shard_from_local_disk(tmp_path, mixed_shard):
    path = tmp_path / "mixed.tar"
    path.write_bytes(mixed_shard)
    check_mixed_shard(list(read_shard(str(path), CONFIG)), str(path))


def test_read_shard_from_s3(local_s3, mixed_shard):
    local_s3.create_bucket("mixed")
    url = local_s3.put("mixed", "shards/000000.tar", mixed_shard)
    check_mixed_shard(list(read_shard(url, CONFIG, local_s3.storage_options)), url)


def test_samples_carry_video_caption_and_metadata(tmp_path, mixed_samples, mixed_shard):
    path = tmp_path / "mixed.tar"
    path.write_bytes(mixed_shard)
    items = list(iter_samples(str(path), CONFIG))
    samples = [x for x in items if isinstance(x, Sample)]
    assert [s.key for s in samples] == ["good-a", "empty", "garbage", "too-short", "good-b"]
    a, b = samples[0], samples[-1]
    assert (a.media, a.media_ext, a.caption, a.meta) == (mixed_samples[0]["mp4"], "mp4", "a caption", '{"id": 1}')
    assert (b.media_ext, b.caption) == ("mkv", "b")
    assert (a.media_type, a.parts) == ("video", ("json", "mp4", "txt"))
    assert samples[1].caption is None  # no txt part
    assert pickle.loads(pickle.dumps(a)) == a


@pytest.mark.parametrize(
    ("caption_key", "json_part", "expected"),
    [
        ("json:caption", {"caption": " from json "}, "from json"),
        ("json:meta.text", {"meta": {"text": "nested"}}, "nested"),
        ("json:caption", {"other": 1}, None),
        ("json:caption", "{not json", None),
        ("txt", {"caption": "ignored"}, "from txt"),
        (None, {"caption": "ignored"}, None),
    ],
)
def test_caption_from_json_fields(tmp_path, caption_key, json_part, expected):
    video = encode(index_frames(9))
    path = tmp_path / "c.tar"
    path.write_bytes(make_shard([{"__key__": "k", "mp4": video, "txt": "from txt", "json": json_part}]))
    config = ReadConfig(resolution=(48, 64), caption_key=caption_key)
    (sample,) = list(iter_samples(str(path), config))
    assert sample.caption == expected
    assert sample.meta == (json_part if isinstance(json_part, str) else __import__("json").dumps(json_part))


def test_video_extension_preference_and_names_with_dots(tmp_path):
    mkv = encode(index_frames(9), container="matroska")
    path = tmp_path / "e.tar"
    path.write_bytes(make_shard([
        {"__key__": "clip", "webm": b"webm bytes", "mkv": mkv},
        {"__key__": "dir/sub/x", "0.mp4": b"mp4 bytes"},
        {"__key__": "y", "mp3": b"audio"},
    ]))
    config = ReadConfig(resolution=(48, 64), video_extensions=("mkv", "webm", "mp4"))
    first, second, third = iter_samples(str(path), config)
    assert (first.media, first.media_ext) == (mkv, "mkv")
    assert (second.key, second.media, second.media_ext) == ("dir/sub/x", b"mp4 bytes", "mp4")
    assert (third.key, third.error_type) == ("y", "NoMediaPart")


def test_duplicate_part_is_reported_and_the_first_kept(tmp_path):
    path = tmp_path / "d.tar"  # members a.mp4, a.mp4, b.mp4
    path.write_bytes(make_shard([{"__key__": "a", "mp4": b"first"}, {"__key__": "a", "mp4": b"second"},
                                 {"__key__": "b", "mp4": b"b"}]))
    items = list(iter_samples(str(path), CONFIG))
    assert [(type(x).__name__, x.key) for x in items] == [("ErrorRecord", "a"), ("Sample", "a"), ("Sample", "b")]
    assert items[0].error_type == "DuplicatePart" and items[1].media == b"first"


# -- damaged shards --------------------------------------------------------------------------

GOOD = [{"__key__": f"k{i}", "mp4": encode(index_frames(12)), "txt": f"c{i}"} for i in range(4)]


def read_all(url: str, storage_options=None) -> tuple[list[str], list[ErrorRecord]]:
    items = list(read_shard(url, ReadConfig(resolution=(48, 64), num_frames=9), storage_options))
    keys = [x.info.key for x in items if isinstance(x, Clip)]
    return keys, [x for x in items if isinstance(x, ErrorRecord)]


@pytest.mark.parametrize(
    ("damage", "keys", "error_type", "dropped"),
    [
        (lambda s: cut_inside(s, "k2.mp4"), ["k0", "k1"], "TruncatedShard", "k2"),  # k1 was complete: kept
        (lambda s: cut_inside(s, "k2.txt"), ["k0", "k1"], "TruncatedShard", "k2"),  # k2 lost its caption
        (lambda s: cut_before(s, "k3.mp4"), ["k0", "k1"], "TruncatedShard", "k2"),  # k2 may miss parts
        (lambda s: s[: len(s) - 10240], ["k0", "k1", "k2"], "TruncatedShard", "k3"),  # end blocks gone
        (lambda s: corrupt_header(s, "k1.txt"), [], "CorruptShard", "k1"),
    ],
    ids=["cut-in-video", "cut-in-caption", "cut-at-member", "no-end-blocks", "corrupt-header"],
)
def test_shard_cut_short_keeps_the_samples_before_the_damage(tmp_path, damage, keys, error_type, dropped):
    path = tmp_path / "cut.tar"
    path.write_bytes(damage(make_shard(GOOD)))
    got, errors = read_all(str(path))
    if error_type == "CorruptShard":
        keys = ["k0"]
    assert got == keys
    (error,) = errors
    assert (error.shard, error.key, error.stage, error.error_type) == (str(path), dropped, "shard", error_type)
    assert error.samples_read == len(keys)
    assert f"{len(keys)} samples read before it" in error.message


def test_shard_cut_short_on_s3(local_s3):
    local_s3.create_bucket("cut")
    shard = make_shard(GOOD)
    url = local_s3.put("cut", "000000.tar", cut_inside(shard, "k3.txt"))
    keys, errors = read_all(url, local_s3.storage_options)
    assert keys == ["k0", "k1", "k2"]
    assert [(e.key, e.stage, e.error_type, e.samples_read) for e in errors] == [("k3", "shard", "TruncatedShard", 3)]


def test_unreadable_shards_give_one_record_each(tmp_path, local_s3):
    (tmp_path / "garbage.tar").write_bytes(np.random.default_rng(0).bytes(20000))
    (tmp_path / "empty.tar").write_bytes(b"")
    cases = [
        (str(tmp_path / "missing.tar"), None, "FileNotFoundError"),
        (str(tmp_path / "garbage.tar"), None, "CorruptShard"),
        (str(tmp_path / "empty.tar"), None, "CorruptShard"),
        ("s3://no-such-bucket/000000.tar", local_s3.storage_options, "FileNotFoundError"),
    ]
    for url, options, error_type in cases:
        items = list(read_shard(url, CONFIG, options))
        assert [(x.shard, x.stage, x.error_type, x.samples_read) for x in items] == [(url, "shard", error_type, 0)], url


def test_many_samples_stream_through(tmp_path):
    # a shard bigger than one read block, read sample by sample
    video = encode(index_frames(9))
    samples = [{"__key__": f"{i:05d}", "mp4": video, "json": {"i": i}} for i in range(300)]
    path = tmp_path / "big.tar"
    path.write_bytes(make_shard(samples))
    keys = [s.key for s in iter_samples(str(path), CONFIG)]
    assert keys == [f"{i:05d}" for i in range(300)]
