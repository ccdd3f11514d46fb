"""Which shards an epoch was planned over, written compactly into a resume state.

An epoch resumed in a later process must read the shards it started with, though the output may
have committed more since. A state cannot carry 10^6 names per reader, so names are run-length
coded: ``part-000000`` .. ``part-999999`` is one run ``["part-", 0, 1000000, 6]``; a gap (a shard
not yet committed) starts a new run, and a name without a trailing number is a run of its own.
A digest over names and row counts proves that a later snapshot holds the same shards, unchanged.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Run = list[Any]  # [prefix, first number, stop number, digits]; [name, None, None, 0] for a name without a number
_NUMBERED = re.compile(r"(.*?)(\d+)")


@dataclass(frozen=True)
class ShardSet:
    count: int
    rows: int
    digest: str  # sha256 of "name rows" lines, in name order
    runs: list[Run]

    @classmethod
    def of(cls, names: Sequence[str], rows: Sequence[int]) -> ShardSet:
        return cls(len(names), sum(rows), digest(names, rows), encode_names(names))

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "rows": self.rows, "digest": self.digest, "runs": self.runs}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShardSet:
        return cls(int(data["count"]), int(data["rows"]), str(data["digest"]), [list(run) for run in data["runs"]])


def digest(names: Sequence[str], rows: Sequence[int]) -> str:
    sha = hashlib.sha256()
    for name, count in zip(names, rows):
        sha.update(f"{name} {count}\n".encode())
    return sha.hexdigest()


def encode_names(names: Sequence[str]) -> list[Run]:
    runs: list[Run] = []
    for name in names:
        match = _NUMBERED.fullmatch(name)
        if match is None:
            runs.append([name, None, None, 0])
            continue
        prefix, digits = match.groups()
        number, width = int(digits), len(digits)
        last = runs[-1] if runs else None
        if last is not None and last[1] is not None and last[0] == prefix and last[3] == width and last[2] == number:
            last[2] = number + 1
        else:
            runs.append([prefix, number, number + 1, width])
    return runs


def decode_names(runs: Sequence[Run]) -> list[str]:
    names = []
    for prefix, first, stop, width in runs:
        if first is None:
            names.append(prefix)
        else:
            names.extend(f"{prefix}{number:0{width}d}" for number in range(first, stop))
    return names
