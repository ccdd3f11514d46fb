"""``_runs/<started>-<run>.json``: each run's commit records added up, so that resuming and
summing up an output of 10^6 shards reads a few files, not one commit record per shard.

A run writes its file when it starts, naming the shards it is about to encode ("complete":
false), and again when it ends, with the shards it committed (rows, source token) and their
``Totals``. The output's state is folded from these files, newest first, against the listing of
``_committed/`` (which alone says what is committed): a shard belongs to the newest run that
claims it. A run's totals count as a whole only if each shard it claims is still committed and
claimed by no newer run; otherwise (a shard re-encoded since, or its marker removed) the commit
records of its remaining shards are read. Shards that no finished run claims (a run that crashed,
an output of an earlier version) are read from their commit records too; the job then writes
them down as an "adopted" file, so the next run does not read them again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .records import CommitRecord, Totals

INDEX_VERSION = 1


@dataclass
class RunIndex:
    run_id: str
    started_at: float
    complete: bool = False
    planned: list[str] = field(default_factory=list)  # while it runs: the shards it may commit
    shards: dict[str, tuple[int, str | None]] = field(default_factory=dict)  # committed: name -> (rows, source)
    totals: Totals = field(default_factory=Totals)

    @property
    def file_name(self) -> str:
        return f"{self.started_at:017.6f}-{self.run_id}.json"  # sorts by start time

    def add(self, record: CommitRecord, source: str | None) -> None:
        self.shards[record.shard] = (record.rows, source)
        self.totals.add(record)

    def to_dict(self) -> dict[str, Any]:
        return {"version": INDEX_VERSION, "run_id": self.run_id, "started_at": self.started_at,
                "complete": self.complete, "planned": self.planned,
                "shards": {name: list(entry) for name, entry in self.shards.items()},
                "totals": self.totals.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunIndex":
        return cls(data["run_id"], float(data["started_at"]), bool(data.get("complete")), list(data.get("planned", [])),
                   {name: (int(rows), source) for name, (rows, source) in data.get("shards", {}).items()},
                   Totals.from_dict(data.get("totals")))


@dataclass
class OutputState:
    """The committed shards of an output and their totals."""

    shards: dict[str, tuple[int, str | None]]  # committed shard -> (rows, source token when encoded)
    totals: Totals
    adopted: RunIndex | None  # the shards whose commit records had to be read, added up


def fold(committed: Iterable[str], indexes: list[RunIndex],
         read_records: Callable[[list[str]], Iterator[CommitRecord]], now: float = 0.0) -> OutputState:
    """The state of an output from the names in ``_committed/``, its run files (any order) and
    ``read_records`` (names -> their commit records, for what the run files do not settle)."""
    committed = set(committed)
    shards: dict[str, tuple[int, str | None]] = {}
    totals = Totals()
    to_read: list[str] = []
    for index in sorted(indexes, key=lambda i: i.started_at, reverse=True):
        if not index.complete:
            claimed = [name for name in index.planned if name in committed and name not in shards]
            to_read.extend(claimed)
            shards.update((name, (0, None)) for name in claimed)  # placeholders until read
            continue
        claimed = [name for name in index.shards if name not in shards]
        current = [name for name in claimed if name in committed]
        if len(current) == len(index.shards):
            totals.merge(index.totals)
        else:
            to_read.extend(current)
        shards.update((name, index.shards[name]) for name in current)
    to_read.extend(name for name in committed if name not in shards)
    adopted = RunIndex("adopted", now, complete=True) if to_read else None
    if adopted:
        for name in to_read:
            shards.pop(name, None)  # back once its record is read (a marker removed meanwhile is not)
        for record in read_records(sorted(to_read)):
            adopted.add(record, record.source)
            shards[record.shard] = (record.rows, record.source)
        totals.merge(adopted.totals)
    return OutputState(shards, totals, adopted)
