"""What a training reader may use from a job's output folder: the committed shards only.

A latents file without a commit marker is a leftover of an interrupted attempt (its rows
may be incomplete or be written again), so shards are found through ``_committed/`` and
sized by their commit records, never by listing ``latents/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow.parquet as pq

from ..output.layout import OutputLayout
from ..output.manifest import Manifest
from ..output.reader import OutputNotReadable, read_job_output
from ..output.schema import read_file_metadata
from ..output.stats import LatentStats
from ..output.storage import is_local

__all__ = ["CommittedOutput", "CommittedShard", "OutputNotReadable", "open_output", "open_parquet"]


@dataclass(frozen=True)
class CommittedShard:
    name: str
    rows: int


@dataclass(frozen=True)
class CommittedOutput:
    """A snapshot of an output folder: shards committed when it was opened, in name order.
    Small (names and row counts): DataLoader workers get a copy each."""

    url: str
    storage_options: dict[str, Any]
    manifest: Manifest
    shards: tuple[CommittedShard, ...]
    file_metadata: dict[str, Any]  # key-value metadata of the first non-empty latents file
    stats: LatentStats  # merged from the commit records: the same figures as _summary.json

    @property
    def num_rows(self) -> int:
        return sum(shard.rows for shard in self.shards)

    def layout(self) -> OutputLayout:
        """A fresh layout (and filesystem) for this process: never pickled into workers."""
        return OutputLayout(self.url, self.storage_options)


def open_parquet(layout: OutputLayout, path: str) -> pq.ParquetFile:
    """Local files through pyarrow's own I/O (faster); anything else through fsspec.
    ``close(force=True)`` closes either kind. Never memory-mapped: latents are handed out as
    views of what pyarrow read (see tensors.py), which must be private memory."""
    if is_local(layout.fs):
        return pq.ParquetFile(path, memory_map=False)
    return pq.ParquetFile(layout.fs.open(path, "rb"))


def open_output(url: str, storage_options: dict[str, Any] | None = None) -> CommittedOutput:
    """The output's committed shards and their rows, from the run files (``_runs/``, a few reads; commit
    records only of shards no finished run accounts for): opening 10^6 shards does not read 10^6 records."""
    output = read_job_output(OutputLayout(url, storage_options))
    layout = output.layout
    if not output.shards:
        raise OutputNotReadable(f"{url} has no committed shards yet (nothing in _committed/); wait for the job to "
                                "commit some, or check its log")
    # rows as each shard's commit record says (reading checks each file against it)
    shards = tuple(CommittedShard(name, rows) for name, (rows, _) in sorted(output.shards.items()))
    first = next((shard for shard in shards if shard.rows), None)
    if first is None:
        raise OutputNotReadable(f"{url}: the {len(shards)} committed shard(s) hold no rows (every sample failed; "
                                "see errors/)")
    with layout.fs.open(layout.latents(first.name), "rb") as file:
        metadata = read_file_metadata(pq.ParquetFile(file).schema_arrow)
    return CommittedOutput(layout.url, dict(storage_options or {}), output.manifest, shards, metadata, output.stats)
