"""What an output holds, summed up: the job's closing summary (``_summary.json``) and the heart of
``inspect_latents``' report are this one record, folded from the output's state (see index.py).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from .index import OutputState
from .quality import CanaryResults
from .records import RunRecord
from .stats import LatentStats


@dataclass(frozen=True)
class ShardCounts:
    """The input's shards by state; without a known input, only the committed and given-up ones are counted."""

    committed: int
    given_up: int
    pending: int | None = None  # None: the input is not known
    total: int | None = None
    not_in_input: int = 0  # committed earlier, no longer listed by the input: kept
    missing: int = 0  # named by the input but not there (the run was allowed to go on without them)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShardCounts:
        return cls(int(data["committed"]), int(data["given_up"]), data.get("pending"), data.get("total"),
                   int(data.get("not_in_input", 0)), int(data.get("missing", 0)))


@dataclass
class OutputSummary:
    output: str
    shards: ShardCounts
    given_up: list[str]  # shard names
    clips: int
    media: dict[str, int]  # clips by media type: video, image
    captioned: int  # clips with a caption
    samples_failed: int
    errors_by_type: dict[str, int]
    warnings_by_type: dict[str, int]  # about samples that were encoded all the same (a video that ends early)
    bytes: dict[str, int]  # by kind: latents, errors
    latent_stats: LatentStats
    quality: CanaryResults | None = None
    this_run: RunRecord | None = None  # the job's summary: what its run did
    finished_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        stats = self.latent_stats
        return {"output": self.output, "finished_at": self.finished_at, "shards": asdict(self.shards),
                "given_up": self.given_up, "clips": self.clips, "media": self.media, "captioned": self.captioned,
                "samples_failed": self.samples_failed, "errors_by_type": self.errors_by_type,
                "warnings_by_type": self.warnings_by_type, "bytes": self.bytes,
                "latent_stats": {**stats.to_dict(), "channels": len(stats.sum), "mean": stats.mean, "std": stats.std},
                "quality": self.quality.to_dict() if self.quality else None,
                "this_run": self.this_run.to_dict() if self.this_run else None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutputSummary:
        return cls(data["output"], ShardCounts.from_dict(data["shards"]), list(data["given_up"]), int(data["clips"]),
                   dict(data.get("media", {})), int(data.get("captioned", 0)), int(data["samples_failed"]),
                   dict(data["errors_by_type"]), dict(data.get("warnings_by_type", {})), dict(data["bytes"]),
                   LatentStats.from_dict(data["latent_stats"]), CanaryResults.from_dict(data.get("quality")),
                   RunRecord.from_dict(data["this_run"]) if data.get("this_run") else None,
                   float(data.get("finished_at", 0.0)))


def summarize(url: str, state: OutputState, given_up: list[str], inputs: list[str] | None = None,
              this_run: RunRecord | None = None) -> OutputSummary:
    """``given_up``: shards with a ``_given_up`` record (and this run's, even where writing it failed);
    ``inputs``: the input's shard names, when known."""
    committed = state.shards
    given_up = sorted(set(given_up) - set(committed))
    totals = state.totals
    if inputs is None:
        shards = ShardCounts(len(committed), len(given_up))
    else:
        listed = set(inputs)
        in_input = sum(1 for name in inputs if name in committed)
        failed = sum(1 for name in given_up if name in listed)
        shards = ShardCounts(in_input, failed, len(inputs) - in_input - failed, len(inputs), len(committed) - in_input,
                             len(this_run.missing) if this_run else 0)
        given_up = [name for name in given_up if name in listed]
    return OutputSummary(url, shards, given_up, totals.rows, dict(totals.media), totals.captioned, totals.errors,
                         dict(totals.errors_by_type), dict(totals.warnings_by_type), dict(totals.bytes), totals.stats,
                         totals.canary, this_run)
