"""The records an output folder keeps, as dataclasses: each is a dict only in its own ``to_dict`` /
``from_dict``, at the file's edge (``from_dict`` also reads the records of older versions).

    CommitRecord   _committed/<shard>.json   one shard: rows, errors, bytes, statistics, source, timings
    GivenUp        _given_up/<shard>.json    a shard given up after max attempts
    Totals         _runs/*.json              commit records added up, so that a summary never reads every
                                             commit record again (see index.py)
    RunRecord      _summary.json this_run    what one run did
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .quality import CanaryResults
from .stats import LatentStats

BYTE_KINDS = ("latents", "errors")


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``data`` that are fields of ``cls`` (older and newer records carry others)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def _added(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return dict(sorted((Counter(a) + Counter(b)).items()))


@dataclass(frozen=True)
class ActorInfo:
    """The encoder process that wrote a shard."""

    pid: int
    host: str
    device: str

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ActorInfo | None:
        return cls(int(data["pid"]), str(data["host"]), str(data["device"])) if data else None


@dataclass(frozen=True)
class Balance:
    """Which side limited a shard (or a run): the encoder waiting for clips, or decode workers waiting for the
    encoder; and where decoding ran (``pipeline.job.balance`` works it out)."""

    encoder_waiting_share: float
    decode_idle_share: float
    decode_workers: int
    decode_nodes: dict[str, int]  # decode workers up per node id
    unplaced_workers: int
    limit: str  # "decode", "input", "encode" or "balanced"
    hint: str

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Balance | None:
        if not data:
            return None
        return cls(float(data["encoder_waiting_share"]), float(data["decode_idle_share"]),
                   int(data["decode_workers"]), dict(data.get("decode_nodes", {})),
                   int(data.get("unplaced_workers", 0)), str(data["limit"]), str(data["hint"]))


@dataclass(frozen=True)
class Decoding:
    calls: int  # worker calls the shard's samples took
    retried: int  # samples decoded again in a fresh worker after one died

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Decoding | None:
        return cls(int(data.get("calls", 0)), int(data.get("retried", 0))) if data else None


@dataclass
class ShardTimings:
    """Seconds an encoder spent on one shard."""

    turn_wait_seconds: float = 0.0  # opened, waiting for the shard before it to be encoded
    startup_seconds: float = 0.0  # the encoder's first wait for its decode workers' processes to start
    decode_wait_seconds: float = 0.0  # waiting for decoded clips
    encode_seconds: float = 0.0
    text_seconds: float = 0.0  # embedding its captions, with a text encoder
    decode_seconds: float = 0.0  # the decode workers' own time on its samples
    encoder_seconds: float = 0.0  # the encoder's time on the shard, less ``startup_seconds``
    total_seconds: float = 0.0  # from its opening to its last batch encoded
    write_seconds: float = 0.0  # publishing

    def to_dict(self) -> dict[str, float]:
        return {name: round(value, 3) for name, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ShardTimings:
        return cls(**{k: float(v) for k, v in _known(cls, data or {}).items()})


@dataclass
class CommitRecord:
    """Written last when a shard is published: its presence is what makes the shard committed."""

    shard: str
    url: str = ""
    rows: int = 0
    media: dict[str, int] = field(default_factory=dict)  # rows by media type: video, image
    captioned: int = 0  # rows with a caption
    errors: int = 0  # samples that failed (error rows of level "error")
    errors_by_type: dict[str, int] = field(default_factory=dict)
    warnings_by_type: dict[str, int] = field(default_factory=dict)  # warnings about samples that went on
    bytes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BYTE_KINDS, 0))
    stats: LatentStats = field(default_factory=LatentStats)
    # the source tar's identity when it was encoded (sources.py): a different one means stale latents
    source: str | None = None
    samples: int = 0
    run_id: str | None = None
    attempt: int = 1
    actor: ActorInfo | None = None
    canary: CanaryResults | None = None  # with --check-every
    balance: Balance | None = None
    decoding: Decoding | None = None
    timings: ShardTimings = field(default_factory=ShardTimings)
    decode_started_at: float | None = None  # time.time() when its first sample went to a decode worker
    encoding_started_at: float | None = None
    encoded_at: float | None = None
    committed_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data.update(stats=self.stats.to_dict(), timings=self.timings.to_dict(),
                    actor=asdict(self.actor) if self.actor else None,
                    canary=self.canary.to_dict() if self.canary else None,
                    balance=asdict(self.balance) if self.balance else None,
                    decoding=asdict(self.decoding) if self.decoding else None)
        return {k: v for k, v in data.items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CommitRecord:
        known = _known(cls, data)
        known.update(stats=LatentStats.from_dict(data.get("stats")),
                     timings=ShardTimings.from_dict(data.get("timings")),
                     actor=ActorInfo.from_dict(data.get("actor")), canary=CanaryResults.from_dict(data.get("canary")),
                     balance=Balance.from_dict(data.get("balance")), decoding=Decoding.from_dict(data.get("decoding")),
                     bytes={**dict.fromkeys(BYTE_KINDS, 0), **data.get("bytes", {})})
        return cls(**known)


@dataclass(frozen=True)
class GivenUp:
    """A shard that failed ``--max-shard-attempts`` times; a re-run tries it again."""

    url: str
    attempts: int
    last_error: str
    at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GivenUp:
        return cls(str(data.get("url", "")), int(data.get("attempts", 0)), str(data.get("last_error", "")),
                   float(data.get("at", 0.0)))


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
    balance: Balance | None = None
    records_read: int = 0  # commit records read at the start: shards committed by a killed run since its last update
    missing: list[str] = field(default_factory=list)  # the input's shards that do not exist (--allow-missing-shards)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "balance": asdict(self.balance) if self.balance else None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        return cls(**{**_known(cls, data), "balance": Balance.from_dict(data.get("balance"))})


@dataclass
class Totals:
    """Commit records added up: exact in any order (integer counts, float64 sums)."""

    shards: int = 0
    rows: int = 0
    media: dict[str, int] = field(default_factory=dict)
    captioned: int = 0
    errors: int = 0
    errors_by_type: dict[str, int] = field(default_factory=dict)
    warnings_by_type: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BYTE_KINDS, 0))
    stats: LatentStats = field(default_factory=LatentStats)
    canary: CanaryResults | None = None  # merged, the worst clips labelled with their shard

    def add(self, record: CommitRecord) -> None:
        one = Totals(1, record.rows, dict(record.media), record.captioned, record.errors, dict(record.errors_by_type),
                     dict(record.warnings_by_type), dict(record.bytes), record.stats)
        if record.canary:
            one.canary = CanaryResults().merge(record.canary, shard=record.shard)
        self.merge(one)

    def merge(self, other: Totals) -> None:
        self.shards += other.shards
        self.rows += other.rows
        self.media = _added(self.media, other.media)
        self.captioned += other.captioned
        self.errors += other.errors
        self.errors_by_type = _added(self.errors_by_type, other.errors_by_type)
        self.warnings_by_type = _added(self.warnings_by_type, other.warnings_by_type)
        self.bytes = {kind: self.bytes.get(kind, 0) + other.bytes.get(kind, 0)
                      for kind in sorted({*self.bytes, *other.bytes})}
        self.stats = self.stats.merge(other.stats)
        if other.canary:
            self.canary = other.canary if self.canary is None else self.canary.merge(other.canary)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "stats": self.stats.to_dict(), "canary": self.canary.to_dict() if self.canary else None}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Totals:
        data = data or {}
        return cls(**{**_known(cls, data), "stats": LatentStats.from_dict(data.get("stats")),
                      "canary": CanaryResults.from_dict(data.get("canary")),
                      "bytes": {**dict.fromkeys(BYTE_KINDS, 0), **data.get("bytes", {})}})
