"""Which rows each reader takes in an epoch: blocks, a seeded order, equal contiguous shares.

Rows are cut into blocks of consecutive rows of one shard (one Parquet row group by
default, so a block is one read). An epoch's order permutes the blocks with a generator
seeded by (seed, epoch), so every rank and worker computes the same order without talking
to the others. Each of the ``slots`` readers (ranks x DataLoader workers) then takes one
contiguous share of that row stream, cutting blocks at the edges: the shares partition
the rows exactly, and differ in size by at most one row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Block:
    shard: int  # index into the output's committed shards
    start: int  # first row within the shard
    stop: int  # one past the last row

    @property
    def rows(self) -> int:
        return self.stop - self.start


def make_blocks(shard_rows: Sequence[int], block_rows: int) -> list[Block]:
    return [Block(shard, start, min(start + block_rows, rows))
            for shard, rows in enumerate(shard_rows) for start in range(0, rows, block_rows)]


def epoch_order(blocks: list[Block], shuffle: bool, seed: int, epoch: int) -> list[Block]:
    if not shuffle:
        return list(blocks)
    order = np.random.default_rng([seed, epoch]).permutation(len(blocks))
    return [blocks[i] for i in order]


def share_of(blocks: list[Block], slot: int, slots: int) -> list[Block]:
    """Rows [total*slot//slots, total*(slot+1)//slots) of the blocks' row stream, as blocks."""
    total = sum(block.rows for block in blocks)
    begin, end = total * slot // slots, total * (slot + 1) // slots
    share, position = [], 0
    for block in blocks:
        lo, hi = max(begin, position), min(end, position + block.rows)
        if lo < hi:
            share.append(Block(block.shard, block.start + lo - position, block.start + hi - position))
        position += block.rows
        if position >= end:
            break
    return share


def windows(blocks: list[Block], size: int) -> list[list[Block]]:
    """Consecutive groups of ``size`` blocks whose rows are shuffled together."""
    return [blocks[i:i + size] for i in range(0, len(blocks), size)]
