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
from ..output.schema import LATENT_DTYPES, read_file_metadata
from ..output.stats import LatentStats
from ..output.storage import is_local

__all__ = ["CommittedOutput", "CommittedShard", "OutputNotReadable", "TextEmbeddings", "open_output", "open_parquet",
           "text_path"]


@dataclass(frozen=True)
class CommittedShard:
    name: str
    rows: int


@dataclass(frozen=True)
class TextEmbeddings:
    """The caption embeddings of an output whose job had a text encoder (``text/<shard>.parquet``)."""

    encoder: str
    dim: int
    dtype: str  # float32 | float16 | bfloat16
    max_tokens: int | None


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
    text: TextEmbeddings | None = None  # None: the job had no text encoder

    @property
    def num_rows(self) -> int:
        return sum(shard.rows for shard in self.shards)

    def layout(self) -> OutputLayout:
        """A fresh layout (and filesystem) for this process: never pickled into workers."""
        return OutputLayout(self.url, self.storage_options)


def text_path(layout: OutputLayout, shard: str) -> str:
    """``OUT/text/<shard>.parquet``: the shard's caption embeddings, a row per sample with a caption."""
    return layout.text(shard)


def open_parquet(layout: OutputLayout, path: str) -> pq.ParquetFile:
    """Local files through pyarrow's own I/O, memory-mapped: pyarrow decodes a binary column into
    fresh heap memory either way, and mapping saves the copy out of the page cache (2x faster for
    raw latents); tensors.py still checks that a buffer it hands out is writable, private memory.
    Anything else through fsspec. ``close(force=True)`` closes either kind."""
    if is_local(layout.fs):
        return pq.ParquetFile(path, memory_map=True)
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
    return CommittedOutput(layout.url, dict(storage_options or {}), output.manifest, shards, metadata, output.stats,
                           _text_embeddings(layout, first.name))


def _text_embeddings(layout: OutputLayout, shard: str) -> TextEmbeddings | None:
    """From the text file of a shard with rows: the job writes one for every shard when it has a text encoder."""
    path = text_path(layout, shard)
    if not layout.fs.exists(path):
        return None
    with layout.fs.open(path, "rb") as file:
        metadata = read_file_metadata(pq.ParquetFile(file).schema_arrow)
    missing = [key for key in ("text_dim", "text_dtype") if key not in metadata]
    if missing:
        raise OutputNotReadable(f"{layout.url_of(path)} lacks the key-value metadata {missing} (what its "
                                "embeddings are)")
    if metadata["text_dtype"] not in LATENT_DTYPES:
        raise OutputNotReadable(f"{layout.url_of(path)}: text_dtype {metadata['text_dtype']!r} is none of "
                                f"{sorted(LATENT_DTYPES)}")
    return TextEmbeddings(str(metadata.get("text_encoder", "")), int(metadata["text_dim"]), metadata["text_dtype"],
                          metadata.get("max_text_tokens"))
