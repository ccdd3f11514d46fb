"""Stopped after any number of items and resumed from the saved state by a fresh loader (fresh worker
processes), the epoch goes on exactly as the uninterrupted one: the same items, in the same order,
with the same values (posterior noise included), and nothing delivered is read again."""

from __future__ import annotations

import json

import pytest
import torch

from pipeline.dataset import LatentDataset
from pipeline.dataset import shard_files as shard_files_module
from tests.dataset.loading import flat, stateful_loader, take
from tests.support.encoded_outputs import published_output
from tests.support.outputs import read_rows

CONFIGS = {
    "samples, no workers": (0, {}),
    "samples, 2 workers, shuffled": (2, {"shuffle": True}),
    "bucketed batches, 2 workers, shuffled": (2, {"shuffle": True, "batch_size": 3}),
    "posterior samples in batches, drop_last, 2 workers": (2, {"shuffle": True, "sample_posterior": True,
                                                              "batch_size": 2, "drop_last": True}),
}


@pytest.fixture(scope="module")
def output(tmp_path_factory):
    """4 shards x (6 videos of 2 clips + 3 images) = 60 rows in 3 latent shapes, with logvar."""
    return published_output(tmp_path_factory.mktemp("resume") / "out", shards=4, rows=9, store="moments",
                            uncommitted=(), clips=2, media_types=("video", "video", "image"))


def _dataset(output, **options):
    return LatentDataset(str(output.out), seed=7, block_rows=4, shuffle_blocks=2, **options)


def assert_same_items(got, expected):
    assert flat(got) == flat(expected)
    for a, b in zip(got, expected, strict=True):
        assert a.keys() == b.keys()
        for name in a:
            if isinstance(a[name], torch.Tensor):
                torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, equal_nan=True, msg=name)
            else:
                assert a[name] == b[name], name


@pytest.mark.parametrize("config", list(CONFIGS))
def test_a_resumed_epoch_goes_on_as_the_uninterrupted_one(output, config):
    workers, options = CONFIGS[config]
    expected = list(stateful_loader(_dataset(output, **options), workers))
    assert len(flat(expected)) == (60 if "drop_last" not in options else len(flat(expected))) > 40
    for stop in sorted({0, 1, 2, len(expected) // 2, len(expected) - 1, len(expected)}):
        before, state = take(stateful_loader(_dataset(output, **options), workers), stop)
        resumed = stateful_loader(_dataset(output, **options), workers)
        resumed.load_state_dict(state)
        assert_same_items(before + list(resumed), expected)


def test_resuming_in_a_later_epoch_and_going_on_to_the_next(output):
    def epochs(loader, dataset, numbers):
        out = {}
        for epoch in numbers:
            dataset.set_epoch(epoch)
            out[epoch] = list(loader)
        return out

    dataset = _dataset(output, shuffle=True, batch_size=4)
    expected = epochs(stateful_loader(dataset, 2), dataset, (0, 1, 2))
    assert flat(expected[1]) != flat(expected[0]) and sorted(flat(expected[1])) == sorted(flat(expected[0]))

    dataset = _dataset(output, shuffle=True, batch_size=4)
    loader = stateful_loader(dataset, 2)
    epochs(loader, dataset, (0,))
    dataset.set_epoch(1)
    before, state = take(loader, 5)

    dataset = _dataset(output, shuffle=True, batch_size=4)  # a new process would start here
    loader = stateful_loader(dataset, 2)
    loader.load_state_dict(state)
    after = epochs(loader, dataset, (1, 2))
    assert_same_items(before + after[1], expected[1])
    assert_same_items(after[2], expected[2])


def test_a_resumed_pass_never_reads_a_delivered_row(output, monkeypatch):
    """Rows go into samples only when asked for: the resumed pass asks for no row already delivered."""
    rows = {}
    for shard in output.committed:
        for number, row in enumerate(read_rows(output.out, shards=[shard])):
            rows[(row["key"], row["clip"])] = (shard, number)
    before, state = take(stateful_loader(_dataset(output, shuffle=True), 0), 23)
    delivered = {rows[i] for i in flat(before)}

    asked = []
    real_read = shard_files_module.ShardFiles.read

    def read(self, kind, shard, numbers, columns):
        asked.extend((self.output.shards[shard].name, int(n)) for n in numbers)
        return real_read(self, kind, shard, numbers, columns)

    monkeypatch.setattr(shard_files_module.ShardFiles, "read", read)
    loader = stateful_loader(_dataset(output, shuffle=True), 0)
    loader.load_state_dict(state)
    after = list(loader)
    assert len(asked) == len(after) == 60 - 23
    assert not set(asked) & delivered


def test_the_state_is_plain_data_that_says_where_the_reader_is(output):
    dataset = _dataset(output, shuffle=True, batch_size=3)
    iterator = iter(dataset)
    for _ in range(4):
        next(iterator)
    state = json.loads(json.dumps(dataset.state_dict()))  # plain data: JSON, torch.save, any checkpoint
    assert state["format"] == "LatentDataset/1" and state["epoch"] == 0
    assert state["order"] == {"seed": 7, "shuffle": True, "shuffle_blocks": 2, "block_rows": 4}
    assert state["shards"]["count"] == 4 and state["shards"]["rows"] == 60
    assert state["shards"]["runs"] == [["part-", 0, 4, 6]]
    assert state["plan"] == [[0, 60]]
    assert state["reader"] == {"rank": 0, "world_size": 1, "worker": 0, "workers": 1}
    pending = [positions for _, positions in state["buckets"]["pending"]]
    assert state["taken"] == 4 * 3 + sum(len(p) for p in pending)  # 4 batches of 3 delivered, the rest held
    assert state["buckets"]["batch_size"] == 3 and all(len(p) < 3 for p in pending)

    resumed = _dataset(output, shuffle=True, batch_size=3)
    resumed.load_state_dict(state)
    assert flat(list(resumed)) == flat(list(iterator))
