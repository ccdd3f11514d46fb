"""``_runs/``: each run's commit records added up, so that resuming and summing up an output of 10^6 shards
reads a few files, not one commit record per shard.

    _runs/<started>-<run>.<part>.json   written while a run goes: the shards it committed since its last
                                        update (at least every 30 s and every 1,000 commits), and their Totals
    _runs/<started>-<run>.json          written when it ends: every shard it committed, and their Totals;
                                        its update files are then removed

The output's state is folded from these files, newest first, against the listing of ``_committed/``
(which alone says what is committed): a shard belongs to the newest file that claims it. A file's
totals count as a whole only if every shard it claims is still committed and claimed by no newer file;
otherwise (a shard re-encoded since, or its marker removed) the commit records of its remaining shards
are read. Committed shards that no file claims (committed by a run since its last update, before it was
killed; an output of an earlier version) are read from their commit records. So a run killed at any
point costs the next one at most the records of its last 30 s or 1,000 commits.

The next run writes what it folded from a killed run's updates and the records it read as one
"adopted" file and removes the killed run's files: no later run reads them again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .records import CommitRecord, Totals

INDEX_VERSION = 2  # 1 (before 2026-12): a running run's file named the shards it planned, without their totals
UPDATE_COMMITS = 1000  # a running run's file is updated at least every this many commits
UPDATE_SECONDS = 30.0  # and every this many seconds


@dataclass
class RunIndex:
    """One run's file: its committed shards (name -> (rows, source token when encoded)) and their totals.
    ``part`` 0 is the whole run, written when it ends; 1, 2, ... its updates written while it ran."""

    run_id: str
    started_at: float
    part: int = 0
    shards: dict[str, tuple[int, str | None]] = field(default_factory=dict)
    totals: Totals = field(default_factory=Totals)
    complete: bool = True  # False: a version-1 file of a run that never ended (it names no totals)

    @property
    def file_name(self) -> str:
        stem = f"{self.started_at:017.6f}-{self.run_id}"  # sorts by start time
        return f"{stem}.json" if self.part == 0 else f"{stem}.{self.part:06d}.json"

    def add(self, record: CommitRecord, source: str | None) -> None:
        self.shards[record.shard] = (record.rows, source)
        self.totals.add(record)

    def merge(self, other: RunIndex) -> None:
        self.shards.update(other.shards)
        self.totals.merge(other.totals)

    def to_dict(self) -> dict[str, Any]:
        return {"version": INDEX_VERSION, "run_id": self.run_id, "started_at": self.started_at, "part": self.part,
                "shards": {name: list(entry) for name, entry in self.shards.items()},
                "totals": self.totals.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunIndex:
        return cls(data["run_id"], float(data["started_at"]), int(data.get("part", 0)),
                   {name: (int(rows), source) for name, (rows, source) in data.get("shards", {}).items()},
                   Totals.from_dict(data.get("totals")), bool(data.get("complete", True)))


@dataclass
class OutputState:
    """The committed shards of an output and their totals."""

    shards: dict[str, tuple[int, str | None]]  # committed shard -> (rows, source token when encoded)
    totals: Totals
    adopted: RunIndex | None = None  # what runs that did not end left, and the records read: to write down
    replaced: list[str] = field(default_factory=list)  # the files of those runs, which ``adopted`` replaces
    records_read: int = 0  # commit records no run file accounted for

    def with_run(self, run: RunIndex) -> OutputState:
        """The state once ``run``'s shards are committed too (none of them was committed before)."""
        totals = Totals()
        totals.merge(self.totals)
        totals.merge(run.totals)
        return OutputState({**self.shards, **run.shards}, totals)


def _newest_first(index: RunIndex) -> tuple[float, str, float]:
    return index.started_at, index.run_id, math.inf if index.part == 0 else index.part


def fold(committed: Iterable[str], indexes: list[RunIndex],
         read_records: Callable[[list[str]], Iterator[CommitRecord]], now: float = 0.0) -> OutputState:
    """The state of an output from the names in ``_committed/``, its run files (any order) and
    ``read_records`` (names -> their commit records, for what the run files do not settle)."""
    committed = set(committed)
    shards: dict[str, tuple[int, str | None]] = {}
    totals = Totals()
    to_read: list[str] = []
    adopted = RunIndex("adopted", now)
    replaced: list[str] = []
    for index in sorted(indexes, key=_newest_first, reverse=True):
        if not index.complete:  # an older version's file of a run that never ended: its shards are read
            replaced.append(index.file_name)
            continue
        current = [name for name in index.shards if name not in shards and name in committed]
        whole = len(current) == len(index.shards)
        if whole:
            totals.merge(index.totals)
        else:
            to_read.extend(current)
        shards.update((name, index.shards[name]) for name in current)
        if index.part:  # an update of a run that did not end (or is running now)
            replaced.append(index.file_name)
            if whole:
                adopted.merge(index)
    to_read.extend(name for name in committed if name not in shards)
    for name in to_read:
        shards.pop(name, None)  # back once its record is read (a marker removed meanwhile is not)
    for record in read_records(sorted(to_read)):
        adopted.add(record, record.source)
        totals.add(record)
        shards[record.shard] = (record.rows, record.source)
    return OutputState(shards, totals, adopted if adopted.shards or replaced else None, replaced, len(to_read))
