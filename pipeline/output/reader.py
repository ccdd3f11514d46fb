"""Reading a job's output folder: the one place that turns ``_job.json``, the run files, the
commit records and the given-up markers into the output's state and totals. The job's summary,
``inspect_latents``' report and the training dataset all read it through here, so they always
agree.

Only committed shards count: a latents file without a commit marker is a leftover of an
interrupted attempt. Totals come from the run files (index.py): a few reads, whatever the
number of shards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .index import OutputState
from .layout import OutputLayout
from .records import Totals
from .stats import LatentStats
from .storage import read_json


class OutputNotReadable(ValueError):
    """The folder is not (yet) a job output with committed rows; the message says which."""


@dataclass(frozen=True)
class JobOutput:
    """A snapshot of an output folder: what had been committed and given up when it was read."""

    layout: OutputLayout
    manifest: dict[str, Any]  # {} when the folder has no _job.json yet
    state: OutputState
    given_up: tuple[str, ...]

    @property
    def shards(self) -> dict[str, tuple[int, str | None]]:
        """Committed shard -> (rows, source token when encoded)."""
        return self.state.shards

    @property
    def totals(self) -> Totals:
        return self.state.totals

    @property
    def rows(self) -> int:
        return self.totals.rows

    @property
    def errors(self) -> int:
        """Samples that failed (error rows) in committed shards."""
        return self.totals.errors

    @property
    def errors_by_type(self) -> dict[str, int]:
        return dict(sorted(self.totals.errors_by_type.items()))

    @property
    def bytes(self) -> dict[str, int]:
        return dict(self.totals.bytes)

    @property
    def stats(self) -> LatentStats:
        """Per-channel latent statistics over every committed shard (float64 sums: any order agrees to ~1e-15)."""
        return self.totals.stats


def read_job_output(layout: OutputLayout, require_manifest: bool = True) -> JobOutput:
    """The folder's state; ``require_manifest``: raise OutputNotReadable unless a job has started on it."""
    from .sink import OutputSink

    if not layout.exists():
        if require_manifest:
            raise OutputNotReadable(f"{layout.url} has no _job.json: it is not an output folder of "
                                    "jobs/encode_dataset.py, or that job has not started writing to it")
        manifest: dict[str, Any] = {}
    else:
        manifest = read_json(layout.fs, layout.job_manifest)
    sink = OutputSink(layout.url, layout.storage_options)
    return JobOutput(sink.layout, manifest, sink.state(), tuple(layout.given_up_shards()))
