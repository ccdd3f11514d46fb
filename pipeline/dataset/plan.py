"""An epoch's order of rows, the same for every reader, and each reader's share of it.

Rows are cut into blocks of consecutive rows of one shard (one Parquet row group by default, so
a block is one read). The epoch's *order* numbers every row by a position 0..N-1: blocks permuted
by a generator seeded by (seed, epoch), grouped into windows of ``window_blocks`` consecutive blocks
whose rows are permuted together, seeded by (seed, epoch, window). Without shuffle a window is one
block in file order. Every rank and worker computes the same order without talking to the others,
and the order does not depend on how many of them read it.

A *plan* is the positions an epoch still has to deliver, as sorted intervals: the whole epoch, or,
after a resume with another number of readers, what the earlier readers had not delivered. Each of
the ``slots`` readers (ranks x DataLoader workers) takes one contiguous share of the plan: the shares
partition it exactly and differ in size by at most one position.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

Interval = tuple[int, int]  # positions [start, stop)


@dataclass(frozen=True)
class Block:
    shard: int  # index into the output's committed shards
    start: int  # first row within the shard
    stop: int  # one past the last row

    @property
    def rows(self) -> int:
        return self.stop - self.start


def make_blocks(shard_rows: Sequence[int], block_rows: int, shards: Sequence[int] | None = None) -> list[Block]:
    """Blocks of the shards in order; ``shards`` names each one's index (default 0, 1, ...)."""
    indices = range(len(shard_rows)) if shards is None else shards
    return [Block(shard, start, min(start + block_rows, rows))
            for shard, rows in zip(indices, shard_rows) for start in range(0, rows, block_rows)]


class EpochOrder:
    """Position -> row for one epoch: windows of blocks, each window's rows in a seeded order."""

    def __init__(self, blocks: list[Block], *, shuffle: bool, seed: int, epoch: int, window_blocks: int) -> None:
        self.shuffle, self.seed, self.epoch = shuffle, seed, epoch
        if shuffle:
            blocks = [blocks[i] for i in np.random.default_rng([seed, epoch]).permutation(len(blocks))]
        size = window_blocks if shuffle else 1
        self.windows = [blocks[i:i + size] for i in range(0, len(blocks), size)]
        sizes = [sum(block.rows for block in window) for window in self.windows]
        self.starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)

    @property
    def rows(self) -> int:
        return int(self.starts[-1])

    def window_order(self, window: int) -> np.ndarray:
        """The window's rows (numbered 0.. through its blocks in turn) in delivery order."""
        rows = int(self.starts[window + 1] - self.starts[window])
        if not self.shuffle:
            return np.arange(rows, dtype=np.int64)
        return np.random.default_rng([self.seed, self.epoch, window]).permutation(rows).astype(np.int64)

    def pieces(self, intervals: Sequence[Interval]) -> Iterator[tuple[int, int, int]]:
        """(window, first, stop) of window-local positions covering ``intervals``, in order."""
        for start, stop in intervals:
            window = int(np.searchsorted(self.starts, start, side="right")) - 1
            while start < stop:
                end = min(stop, int(self.starts[window + 1]))
                yield window, start - int(self.starts[window]), end - int(self.starts[window])
                start, window = end, window + 1


def whole(rows: int) -> list[Interval]:
    return [(0, rows)] if rows else []


def count(intervals: Sequence[Interval]) -> int:
    return sum(stop - start for start, stop in intervals)


def cut(intervals: Sequence[Interval], begin: int, end: int) -> list[Interval]:
    """Positions [begin, end) of the sequence the intervals make, as intervals."""
    out, seen = [], 0
    for start, stop in intervals:
        lo, hi = max(begin, seen), min(end, seen + stop - start)
        if lo < hi:
            out.append((start + lo - seen, start + hi - seen))
        seen += stop - start
        if seen >= end:
            break
    return out


def share_of(plan: Sequence[Interval], slot: int, slots: int) -> list[Interval]:
    """Reader ``slot`` of ``slots``: positions [T*slot//slots, T*(slot+1)//slots) of the plan's T."""
    total = count(plan)
    return cut(plan, total * slot // slots, total * (slot + 1) // slots)


def intervals_of(positions: Sequence[int] | np.ndarray) -> list[Interval]:
    """Sorted, merged intervals of a set of positions."""
    values = np.unique(np.asarray(positions, dtype=np.int64))
    if not len(values):
        return []
    breaks = np.flatnonzero(np.diff(values) != 1) + 1
    return [(int(run[0]), int(run[-1]) + 1) for run in np.split(values, breaks)]


def merge(intervals: Sequence[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for start, stop in sorted(i for i in intervals if i[0] < i[1]):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], stop))
        else:
            out.append((start, stop))
    return out
