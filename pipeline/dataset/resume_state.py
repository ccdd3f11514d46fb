"""What a reader saves to resume an epoch at the exact sample, and how states of a changed topology combine.

A state belongs to one reader (a rank's DataLoader worker, or the rank itself without workers):

    {"format": "LatentDataset/1",
     "epoch": 3,
     "order": {"seed": 0, "shuffle": true, "shuffle_blocks": 4, "block_rows": 256},
     "shards": {"count": 12, "rows": 3072, "digest": "<sha256>", "runs": [["part-", 0, 12, 6]]},
     "plan": [[0, 3072]],                  # epoch positions the readers split (see plan.py)
     "reader": {"rank": 0, "world_size": 2, "worker": 1, "workers": 4},   # None: any reader
     "taken": 117,                         # positions of this reader's share consumed
     "buckets": {"batch_size": 32, "mix_media": false,
                 "pending": [[["video", 16, 9, 32, 32], [1801, 1790]], ...]}}   # None without batch_size

``taken`` counts the positions of the share consumed in order; ``pending`` lists, per bucket in the
order the buckets were made, the positions read into a bucket but not yet delivered in a batch. The
reader resumes at position ``taken`` of its share and reads the pending rows again, into the same
buckets: the rest of the epoch is what it would have been.

``combine`` turns the states of every reader of a run into one state with ``reader`` None, whose
plan is the epoch's positions no reader had delivered (pending rows included), in epoch order: any
number of ranks and workers then split that plan anew.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from .plan import Interval, count, cut, intervals_of, merge, share_of
from .shard_set import ShardSet

FORMAT = "LatentDataset/1"
ORDER_SETTINGS = ("seed", "shuffle", "shuffle_blocks", "block_rows")
BucketKey = tuple[Any, ...]  # (media_type or None, C, t, h, w)


@dataclass(frozen=True)
class Reader:
    rank: int
    world_size: int
    worker: int
    workers: int

    @property
    def slot(self) -> int:
        return self.rank * self.workers + self.worker

    @property
    def slots(self) -> int:
        return self.world_size * self.workers

    def __str__(self) -> str:
        return f"rank {self.rank} of {self.world_size}, DataLoader worker {self.worker} of {self.workers}"


@dataclass(frozen=True)
class Buckets:
    batch_size: int
    mix_media: bool
    pending: list[tuple[BucketKey, list[int]]]  # every bucket made, in order; its positions not yet delivered


@dataclass(frozen=True)
class ReaderState:
    epoch: int
    order: dict[str, Any]
    shards: ShardSet
    plan: list[Interval]
    reader: Reader | None
    taken: int = 0
    buckets: Buckets | None = None

    def share(self, reader: Reader) -> list[Interval]:
        """This reader's positions still to take, in order."""
        mine = share_of(self.plan, reader.slot, reader.slots)
        return cut(mine, self.taken, count(mine))

    @property
    def finished(self) -> bool:
        """Nothing left to deliver: saved after the epoch's last item (or a combined plan with no rows left)."""
        if self.reader is None:
            return not self.plan
        return not self.share(self.reader) and not any(p for _, p in (self.buckets.pending if self.buckets else []))

    def to_dict(self) -> dict[str, Any]:
        buckets = None if self.buckets is None else {
            "batch_size": self.buckets.batch_size, "mix_media": self.buckets.mix_media,
            "pending": [[list(key), list(positions)] for key, positions in self.buckets.pending]}
        reader = None if self.reader is None else {"rank": self.reader.rank, "world_size": self.reader.world_size,
                                                   "worker": self.reader.worker, "workers": self.reader.workers}
        return {"format": FORMAT, "epoch": self.epoch, "order": dict(self.order), "shards": self.shards.to_dict(),
                "plan": [list(interval) for interval in self.plan], "reader": reader, "taken": self.taken,
                "buckets": buckets}

    @classmethod
    def from_dict(cls, data: Any) -> ReaderState:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"not a LatentDataset state (format {found!r}, expected {FORMAT!r}): give what "
                             "LatentDataset.state_dict() or LatentDataset.combine_states() returned")
        try:
            reader = data["reader"] and Reader(**{k: int(v) for k, v in data["reader"].items()})
            saved = data["buckets"]
            buckets = saved and Buckets(int(saved["batch_size"]), bool(saved["mix_media"]),
                                        [(tuple(key), [int(p) for p in positions])
                                         for key, positions in saved["pending"]])
            return cls(int(data["epoch"]), dict(data["order"]), ShardSet.from_dict(data["shards"]),
                       [(int(a), int(b)) for a, b in data["plan"]], reader or None, int(data["taken"]), buckets or None)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"a LatentDataset state with a missing or malformed entry ({err!r})") from err

    def remaining(self) -> list[Interval]:
        """Positions of the plan this reader had not delivered: the rest of its share and its pending rows."""
        if self.reader is None:
            return list(self.plan)
        pending = [p for _, positions in (self.buckets.pending if self.buckets else []) for p in positions]
        return merge([*self.share(self.reader), *intervals_of(pending)])


def combine(states: Iterable[ReaderState]) -> ReaderState:
    """One state for any topology: the epoch's positions that none of ``states`` (every reader of one run)
    had delivered. Readers whose state is missing would have their whole share delivered again, or lost:
    refused."""
    states = list(states)
    if not states:
        raise ValueError("combine_states needs the states of every reader (rank x DataLoader worker) of the run")
    first = states[0]
    for state in states[1:]:
        for name, mine, theirs in (("epoch", first.epoch, state.epoch), ("order", first.order, state.order),
                                   ("shards", first.shards.digest, state.shards.digest),
                                   ("plan", first.plan, state.plan)):
            if mine != theirs:
                raise ValueError(f"the states disagree on their {name} ({mine!r} and {theirs!r}): combine the states "
                                 "every reader saved at one checkpoint of one run")
    if any(state.reader is None for state in states):
        if len(states) == 1:
            return first
        raise ValueError("a combined state (reader None) cannot be combined again with others; load it as it is")
    slots = {state.reader.slots for state in states}
    if len(slots) != 1:
        raise ValueError(f"the states come from runs of different sizes ({sorted(slots)} readers)")
    total = slots.pop()
    seen: dict[int, Reader] = {}
    for state in states:
        if state.reader.slot in seen:
            raise ValueError(f"two states of {state.reader}: give each reader's state once")
        seen[state.reader.slot] = state.reader
    missing = sorted(set(range(total)) - set(seen))
    if missing:
        raise ValueError(f"the states of {len(missing)} of {total} readers are missing (slots {missing[:8]}, "
                         "slot = rank x workers + worker): give every rank's DataLoader state, every worker's")
    plan = merge([interval for state in states for interval in state.remaining()])
    return replace(first, plan=plan, reader=None, taken=0, buckets=None)

