"""Shards committed after a state was saved: the resumed epoch reads the shards it started with, exactly
as it would have; the new shards come with the next epoch. A shard the epoch read that is no longer
committed as it was makes that epoch impossible to resume exactly: refused, saying so."""

from __future__ import annotations

import pytest

from pipeline.dataset import LatentDataset
from tests.dataset.loading import flat, stateful_loader, take
from tests.support.encoded_outputs import published_output
from tests.support.outputs import ids, read_rows

SHAPE = {"shards": 3, "rows": 6, "clips": 2}  # 12 rows a shard


def _dataset(out):
    return LatentDataset(str(out), shuffle=True, seed=1, block_rows=2, batch_size=2, fields=["key", "clip"])


def test_the_resumed_epoch_keeps_its_shards_and_the_next_epoch_adds_the_new_ones(tmp_path):
    out = published_output(tmp_path / "out", uncommitted=(1,), **SHAPE).out  # part-000001 not committed yet
    expected = flat(list(stateful_loader(_dataset(out), 2)))
    assert len(expected) == 24 and not any(key.startswith("part-000001") for key, _ in expected)
    before, state = take(stateful_loader(_dataset(out), 2), 4)

    published_output(tmp_path / "out", uncommitted=(), **SHAPE)  # now it is (between the two in name order)
    dataset = _dataset(out)
    assert dataset.num_rows == 36
    loader = stateful_loader(dataset, 2)
    loader.load_state_dict(state)
    dataset.set_epoch(0)
    assert flat(before) + flat(list(loader)) == expected

    dataset.set_epoch(1)
    fresh = _dataset(out)
    fresh.set_epoch(1)
    next_epoch = flat(list(loader))
    assert next_epoch == flat(list(stateful_loader(fresh, 2)))
    assert sorted(next_epoch) == sorted(ids(read_rows(out, shards=["part-000000", "part-000001", "part-000002"])))


def test_an_epoch_whose_shard_is_gone_is_not_resumed(tmp_path):
    out = published_output(tmp_path / "out", uncommitted=(), **SHAPE).out
    _, state = take(stateful_loader(_dataset(out), 0), 3)
    (out / "_committed" / "part-000002.json").unlink()  # e.g. retracted: its source changed
    loader = stateful_loader(_dataset(out), 0)
    loader.load_state_dict(state)
    with pytest.raises(ValueError, match=r"the state's epoch read 3 shards, 1 of which this output no longer has "
                                         r"committed \(\['part-000002'\]"):
        next(iter(loader))


def test_an_epoch_whose_shards_were_re_encoded_is_not_resumed(tmp_path):
    out = published_output(tmp_path / "out", uncommitted=(), **SHAPE).out
    _, state = take(stateful_loader(_dataset(out), 0), 3)
    published_output(tmp_path / "out", uncommitted=(), **{**SHAPE, "rows": 7})  # the same shards, other rows
    loader = stateful_loader(_dataset(out), 0)
    loader.load_state_dict(state)
    with pytest.raises(ValueError, match="some of the 3 shards the state's epoch read hold other rows now"):
        next(iter(loader))
