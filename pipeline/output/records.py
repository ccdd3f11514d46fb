"""The records an output folder keeps, as dataclasses: each written and read in one place.

    CommitRecord   _committed/<shard>.json   one shard's rows, errors, bytes, statistics, source, timings
    RunRecord      _summary.json "this_run"  what one run did
    Totals         _runs/<run>.json          a run's commit records added up, so a summary never
                                             needs to read every commit record again (see index.py)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .stats import LatentStats


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass
class CommitRecord:
    """Written last when a shard is published: its presence is what makes the shard committed."""

    shard: str
    url: str = ""
    rows: int = 0
    errors: int = 0
    errors_by_type: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=lambda: {"latents": 0, "errors": 0})
    stats: LatentStats = field(default_factory=LatentStats)
    # the source tar's identity when it was encoded (sources.py): a different one means stale latents
    source: str | None = None
    samples: int = 0
    run_id: str | None = None
    attempt: int = 1
    actor: dict[str, Any] | None = None
    canary: dict[str, Any] | None = None  # canary.CanaryResults.to_dict() with --check-every
    balance: dict[str, Any] | None = None
    decoding: dict[str, int] | None = None  # worker calls the shard took, and samples decoded again after a crash
    timings: dict[str, float] = field(default_factory=dict)
    decode_started_at: float | None = None
    encoding_started_at: float | None = None
    encoded_at: float | None = None
    committed_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stats"] = self.stats.to_dict()
        return {k: v for k, v in data.items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CommitRecord":
        known = _known(cls, data)
        known["stats"] = LatentStats.from_dict(data.get("stats"))
        known.setdefault("bytes", {"latents": 0, "errors": 0})
        return cls(**known)


@dataclass
class RunRecord:
    """One run of the job, as the summary reports it under ``this_run``."""

    run_id: str
    seconds: float = 0.0
    shards_encoded: int = 0
    shards_skipped: int = 0  # committed before this run (and still current)
    clips: int = 0
    clips_per_second: float = 0.0
    given_up: list[str] = field(default_factory=list)
    stopped_by: str | None = None
    abandoned: list[str] = field(default_factory=list)
    write_failures: list[str] = field(default_factory=list)
    # committed shards whose source tar changed since they were encoded: retracted and re-encoded
    stale: list[str] = field(default_factory=list)
    balance: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunRecord":
        return cls(**_known(cls, data))


@dataclass
class Totals:
    """Commit records added up: exact in any order (integer counts, float64 sums)."""

    shards: int = 0
    rows: int = 0
    errors: int = 0
    errors_by_type: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=lambda: {"latents": 0, "errors": 0})
    stats: LatentStats = field(default_factory=LatentStats)
    canary: dict[str, Any] | None = None  # merged CanaryResults, worst clips labelled with their shard

    def add(self, record: CommitRecord) -> None:
        one = Totals(1, record.rows, record.errors, dict(record.errors_by_type), dict(record.bytes), record.stats,
                     None)
        if record.canary:
            from ..job.canary import CanaryResults  # the canary's own merge rule

            one.canary = CanaryResults().merge(CanaryResults.from_dict(record.canary), shard=record.shard).to_dict()
        self.merge(one)

    def merge(self, other: "Totals") -> None:
        self.shards += other.shards
        self.rows += other.rows
        self.errors += other.errors
        self.errors_by_type = dict(sorted((Counter(self.errors_by_type) + Counter(other.errors_by_type)).items()))
        self.bytes = {kind: int(self.bytes.get(kind, 0)) + int(other.bytes.get(kind, 0))
                      for kind in ("latents", "errors")}
        self.stats = self.stats.merge(other.stats)
        if other.canary:
            from ..job.canary import CanaryResults

            self.canary = CanaryResults.from_dict(self.canary).merge(CanaryResults.from_dict(other.canary)).to_dict()

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "stats": self.stats.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "Totals":
        data = data or {}
        known = _known(cls, data)
        known["stats"] = LatentStats.from_dict(data.get("stats"))
        return cls(**known)
