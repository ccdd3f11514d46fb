"""Reading a job's output folder: the one place that turns ``_job.json``, the commit records and
the given-up markers into the output's state and totals. The job's summary, ``inspect_latents``'
report and the training dataset all read it through here, so they always agree.

Only committed shards count: a latents file without a commit marker is a leftover of an
interrupted attempt.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from .layout import OutputLayout
from .stats import LatentStats
from .storage import read_json


class OutputNotReadable(ValueError):
    """The folder is not (yet) a job output with committed rows; the message says which."""


@dataclass(frozen=True)
class JobOutput:
    """A snapshot of an output folder: what had been committed and given up when it was read."""

    layout: OutputLayout
    manifest: dict[str, Any]  # {} when the folder has no _job.json yet
    records: dict[str, dict[str, Any]]  # commit records by shard name
    given_up: tuple[str, ...]

    @property
    def rows(self) -> int:
        return sum(int(r.get("rows", 0)) for r in self.records.values())

    @property
    def errors(self) -> int:
        """Samples that failed (error rows) in committed shards."""
        return sum(int(r.get("errors", 0)) for r in self.records.values())

    @property
    def errors_by_type(self) -> dict[str, int]:
        counts: Counter = Counter()
        for record in self.records.values():
            counts.update(record.get("errors_by_type", {}))
        return dict(sorted(counts.items()))

    @property
    def bytes(self) -> dict[str, int]:
        return {kind: sum(int(r.get("bytes", {}).get(kind, 0)) for r in self.records.values())
                for kind in ("latents", "errors")}

    @property
    def stats(self) -> LatentStats:
        """Per-channel latent statistics over every committed shard (exact in any order: float64 sums)."""
        stats = LatentStats()
        for record in self.records.values():
            stats = stats.merge(LatentStats.from_dict(record.get("stats")))
        return stats


def read_job_output(layout: OutputLayout, require_manifest: bool = True) -> JobOutput:
    """The folder's state; ``require_manifest``: raise OutputNotReadable unless a job has started on it."""
    if not layout.exists():
        if require_manifest:
            raise OutputNotReadable(f"{layout.url} has no _job.json: it is not an output folder of "
                                    "jobs/encode_dataset.py, or that job has not started writing to it")
        manifest: dict[str, Any] = {}
    else:
        manifest = read_json(layout.fs, layout.job_manifest)
    return JobOutput(layout, manifest, layout.commit_records(), tuple(layout.given_up_shards()))
