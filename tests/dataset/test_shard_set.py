"""A resume state names its epoch's shards compactly: runs of numbered names, any name back as it was."""

from __future__ import annotations

from pipeline.dataset.shard_set import ShardSet, decode_names, encode_names


def test_numbered_names_are_runs_and_come_back_the_same():
    names = [f"part-{n:06d}" for n in [*range(0, 1000), *range(1001, 5000)]]  # one not committed yet
    assert encode_names(names) == [["part-", 0, 1000, 6], ["part-", 1001, 5000, 6]]
    assert decode_names(encode_names(names)) == names


def test_any_other_names_come_back_the_same():
    names = sorted(["a9", "a10", "b", "shard-07", "shard-08", "x99", "x100", "0001", "0002", "weird name 3.v2"])
    assert sorted(decode_names(encode_names(names))) == names


def test_a_set_and_its_digest_survive_plain_data():
    shards = ShardSet.of(["part-000000", "part-000002"], [14, 12])
    assert ShardSet.from_dict(shards.to_dict()) == shards and shards.rows == 26 and shards.count == 2
    assert ShardSet.of(["part-000000", "part-000002"], [14, 13]).digest != shards.digest
