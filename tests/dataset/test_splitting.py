"""Ranks x DataLoader workers share every epoch exactly: each row once, in near-equal shares."""

from __future__ import annotations

import bisect
import itertools
from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import DataLoader

from pipeline.dataset import LatentDataset
from pipeline.dataset import latent_dataset as module
from pipeline.dataset.plan import EpochOrder, make_blocks, share_of
from tests.support.outputs import ids, read_rows


@pytest.mark.parametrize("shard_rows", [[10], [7, 0, 13, 1], [3] * 5])
@pytest.mark.parametrize("slots", [1, 2, 3, 7, 40])
def test_shares_partition_the_plan_in_order_and_differ_by_at_most_one(shard_rows, slots):
    rows = sum(shard_rows)
    for plan in ([(0, rows)], [(0, 2), (5, rows)]):  # a whole epoch; one resumed after other readers took 2..4
        shares = [share_of(plan, slot, slots) for slot in range(slots)]
        positions = [p for share in shares for start, stop in share for p in range(start, stop)]
        assert positions == [p for start, stop in plan for p in range(start, stop)]
        sizes = [sum(stop - start for start, stop in share) for share in shares]
        assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("shard_rows", [[10], [7, 0, 13, 1], [3] * 5])
@pytest.mark.parametrize("shuffle", [False, True])
def test_the_epoch_order_numbers_every_row_once(shard_rows, shuffle):
    order = EpochOrder(make_blocks(shard_rows, block_rows=4), shuffle=shuffle, seed=3, epoch=1, window_blocks=2)
    rows = []
    for window, blocks in enumerate(order.windows):
        starts = [0, *itertools.accumulate(block.rows for block in blocks)]
        for local in order.window_order(window).tolist():
            index = bisect.bisect_right(starts, local) - 1
            rows.append((blocks[index].shard, blocks[index].start + local - starts[index]))
    expected = [(s, r) for s, n in enumerate(shard_rows) for r in range(n)]
    assert len(rows) == order.rows == len(expected) and sorted(rows) == expected
    assert (rows == expected) is (not shuffle or sum(shard_rows) <= 1)


def _slot_samples(dataset, worker, workers, monkeypatch):
    monkeypatch.setattr(module, "get_worker_info", lambda: SimpleNamespace(id=worker, num_workers=workers))
    return ids(dataset)


@pytest.mark.parametrize("world_size,workers", [(1, 1), (2, 1), (1, 3), (2, 3), (3, 2), (5, 8)])
@pytest.mark.parametrize("shuffle", [False, True])
def test_ranks_and_workers_together_see_each_row_once(moments, monkeypatch, world_size, workers, shuffle):
    expected = sorted(ids(read_rows(moments.out, shards=moments.committed)))
    for epoch in (0, 1):
        seen, per_rank = [], []
        for rank in range(world_size):
            dataset = LatentDataset(str(moments.out), shuffle=shuffle, seed=5, block_rows=4, rank=rank,
                                    world_size=world_size, fields=["key", "clip"])
            dataset.set_epoch(epoch)
            mine = [s for w in range(workers) for s in _slot_samples(dataset, w, workers, monkeypatch)]
            assert len(mine) == len(dataset)
            per_rank.append(len(mine))
            seen += mine
        assert sorted(seen) == expected
        assert max(per_rank) - min(per_rank) <= 1


def test_a_real_dataloader_with_two_workers_per_rank(moments):
    expected = sorted(ids(read_rows(moments.out, shards=moments.committed)))
    seen = []
    for rank in range(2):
        dataset = LatentDataset(str(moments.out), shuffle=True, seed=1, block_rows=4, rank=rank, world_size=2,
                                fields=["key", "clip"])
        for sample in DataLoader(dataset, batch_size=None, num_workers=2):
            assert isinstance(sample["latent"], torch.Tensor) and sample["latent"].dim() == 4
            seen.append((sample["key"], sample["clip"]))
    assert sorted(seen) == expected


def test_rank_and_world_size_come_from_torch_distributed_when_initialised(moments, monkeypatch):
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 1)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 3)
    dataset = LatentDataset(str(moments.out))
    assert (dataset.rank, dataset.world_size) == (1, 3)
    assert len(list(dataset)) == len(dataset) in (9, 10)


def test_shuffled_order_is_seeded_and_changes_per_epoch(moments):
    def order(seed, epoch):
        dataset = LatentDataset(str(moments.out), shuffle=True, seed=seed, block_rows=4, fields=["key", "clip"])
        dataset.set_epoch(epoch)
        return ids(dataset)

    file_order = ids(read_rows(moments.out, shards=moments.committed))
    assert order(0, 0) == order(0, 0)  # a restarted run gets the same order
    assert order(0, 0) != order(0, 1) and order(0, 0) != order(1, 0)
    assert sorted(order(0, 1)) == sorted(file_order) and order(0, 0) != file_order
    assert ids(LatentDataset(str(moments.out), fields=["key", "clip"])) == file_order  # no shuffle: file order
