"""Reading a job's output folder: the one place that turns ``_job.json``, the run files, the commit
records and the given-up markers into the output's state and summary. The job's summary,
``inspect_latents``' report and the training dataset all read it through here, so they always
agree.

Only committed shards count: a latents file without a commit marker is a leftover of an
interrupted attempt. Totals come from the run files (index.py): a few reads, whatever the
number of shards.
"""

from __future__ import annotations

from dataclasses import dataclass

from .index import OutputState
from .layout import OutputLayout
from .manifest import Manifest
from .stats import LatentStats
from .summary import OutputSummary, summarize


class OutputNotReadable(ValueError):
    """The folder is not (yet) a job output with committed rows; the message says which."""


@dataclass(frozen=True)
class JobOutput:
    """A snapshot of an output folder: what had been committed and given up when it was read."""

    layout: OutputLayout
    manifest: Manifest | None  # None when the folder has no _job.json yet
    state: OutputState
    given_up: tuple[str, ...]

    @property
    def shards(self) -> dict[str, tuple[int, str | None]]:
        """Committed shard -> (rows, source token when encoded)."""
        return self.state.shards

    @property
    def stats(self) -> LatentStats:
        """Per-channel latent statistics over every committed shard (float64 sums: any order agrees to ~1e-15)."""
        return self.state.totals.stats

    def summary(self, inputs: list[str] | None = None) -> OutputSummary:
        """The output summed up (``inputs``: the input's shard names, to count the pending ones)."""
        return summarize(self.layout.url, self.state, list(self.given_up), inputs)


def read_job_output(layout: OutputLayout, require_manifest: bool = True) -> JobOutput:
    """The folder's state; ``require_manifest``: raise OutputNotReadable unless a job has started on it."""
    from .sink import OutputSink

    sink = OutputSink(layout.url, layout.storage_options)
    if not layout.exists():
        if require_manifest:
            raise OutputNotReadable(f"{layout.url} has no _job.json: it is not an output folder of "
                                    "jobs/encode_dataset.py, or that job has not started writing to it")
        manifest = None
    else:
        manifest = sink.manifest()
    return JobOutput(sink.layout, manifest, sink.state(), tuple(layout.given_up_shards()))
