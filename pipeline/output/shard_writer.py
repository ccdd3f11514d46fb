"""Publishing one shard's results: latents and errors first, the commit marker last.

The marker is the only evidence a shard is done. A crash before it leaves files that
the next attempt overwrites; a crash after it loses nothing. Re-runs skip committed
shards, so every row is written exactly once.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .layout import OutputLayout
from .records import CommitRecord
from .schema import ERRORS_SCHEMA, LATENTS_SCHEMA, TEXT_SCHEMA, file_metadata
from .sources import source_token
from .storage import write_atomically, write_json

ROW_GROUP_ROWS = 256
TEXT_ROW_GROUP_ROWS = 32  # a 120 x 4096 bfloat16 embedding is ~1 MB: a training reader reads one group at a time
# Latent bytes barely compress (bf16: ~22% under zstd) while inflating them caps training-side
# reading below 2000 rows/s a core: they are stored raw. Dictionary encoding is useless on tensor
# bytes (every row group fills a dictionary page before pyarrow gives up on it).
UNCOMPRESSED = ("latent", "text_embedding")
NO_DICTIONARY = ("latent", "logvar", "text_embedding")


@dataclass(frozen=True)
class TextRows:
    """A shard's text embeddings: ``TEXT_SCHEMA`` rows and the file's key-value metadata."""

    rows: list[dict[str, Any]]
    metadata: dict[str, Any]


def _write_table(layout: OutputLayout, path: str, table: pa.Table, row_group_rows: int = ROW_GROUP_ROWS) -> int:
    compression = {name: "none" if name in UNCOMPRESSED else "zstd" for name in table.column_names}
    dictionary = [name for name in table.column_names if name not in NO_DICTIONARY]
    return write_atomically(layout.fs, path,
                            lambda file: pq.write_table(table, file, row_group_size=row_group_rows,
                                                        compression=compression, use_dictionary=dictionary))


def publish_shard(layout: OutputLayout, record: CommitRecord, latent_rows: list[dict[str, Any]],
                  error_rows: list[dict[str, Any]], metadata: dict[str, Any],
                  text: TextRows | None = None) -> CommitRecord:
    """Write ``text/<shard>.parquet`` (with a text encoder), ``latents/<shard>.parquet``,
    ``errors/<shard>.parquet``, then ``_committed/<shard>.json``; returns the commit record as written: its
    counts from the rows (the error rows less the warnings the record names), its ``source`` the tar's token
    now, unless given."""
    started = time.perf_counter()
    shard = record.shard
    written = {}
    if text is not None:
        texts = pa.Table.from_pylist(text.rows, schema=TEXT_SCHEMA.with_metadata(file_metadata(text.metadata)))
        written["text"] = _write_table(layout, layout.text(shard), texts, TEXT_ROW_GROUP_ROWS)
    latents = pa.Table.from_pylist(latent_rows, schema=LATENTS_SCHEMA.with_metadata(file_metadata(metadata)))
    errors = pa.Table.from_pylist(error_rows, schema=ERRORS_SCHEMA.with_metadata(file_metadata(metadata)))
    written["latents"] = _write_table(layout, layout.latents(shard), latents)
    written["errors"] = _write_table(layout, layout.errors(shard), errors)
    source = record.source
    if source is None and record.url:
        source = source_token(record.url, layout.storage_options)
    committed = replace(record, rows=latents.num_rows, errors=errors.num_rows - sum(record.warnings_by_type.values()),
                        media=dict(sorted(Counter(row["media_type"] for row in latent_rows).items())),
                        captioned=sum(row["caption"] is not None for row in latent_rows), source=source,
                        bytes=written,
                        timings=replace(record.timings, write_seconds=time.perf_counter() - started),
                        committed_at=time.time())
    write_json(layout.fs, layout.committed(shard), committed.to_dict())
    if layout.fs.exists(layout.given_up(shard)):
        layout.fs.rm(layout.given_up(shard))
    return committed
