"""Publishing one shard's results: latents and errors first, the commit marker last.

The marker is the only evidence a shard is done. A crash before it leaves files that
the next attempt overwrites; a crash after it loses nothing. Re-runs skip committed
shards, so every row is written exactly once.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import replace
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .layout import OutputLayout
from .records import CommitRecord
from .schema import ERRORS_SCHEMA, LATENTS_SCHEMA, file_metadata
from .sources import source_token
from .storage import write_atomically, write_json

ROW_GROUP_ROWS = 256
# Latent bytes barely compress (bf16: ~22% under zstd) while inflating them caps training-side
# reading below 2000 rows/s a core: they are stored raw. Dictionary encoding is useless on tensor
# bytes (every row group fills a dictionary page before pyarrow gives up on it).
UNCOMPRESSED = ("latent",)
NO_DICTIONARY = ("latent", "logvar")


def _write_table(layout: OutputLayout, path: str, table: pa.Table) -> int:
    compression = {name: "none" if name in UNCOMPRESSED else "zstd" for name in table.column_names}
    dictionary = [name for name in table.column_names if name not in NO_DICTIONARY]
    return write_atomically(layout.fs, path,
                            lambda file: pq.write_table(table, file, row_group_size=ROW_GROUP_ROWS,
                                                        compression=compression, use_dictionary=dictionary))


def publish_shard(layout: OutputLayout, record: CommitRecord, latent_rows: list[dict[str, Any]],
                  error_rows: list[dict[str, Any]], metadata: dict[str, Any]) -> CommitRecord:
    """Write ``latents/<shard>.parquet``, ``errors/<shard>.parquet``, then ``_committed/<shard>.json``;
    returns the commit record as written: its counts from the rows (the error rows less the warnings the
    record names), its ``source`` the tar's token now, unless given."""
    started = time.perf_counter()
    shard = record.shard
    latents = pa.Table.from_pylist(latent_rows, schema=LATENTS_SCHEMA.with_metadata(file_metadata(metadata)))
    errors = pa.Table.from_pylist(error_rows, schema=ERRORS_SCHEMA.with_metadata(file_metadata(metadata)))
    latent_bytes = _write_table(layout, layout.latents(shard), latents)
    error_bytes = _write_table(layout, layout.errors(shard), errors)
    source = record.source
    if source is None and record.url:
        source = source_token(record.url, layout.storage_options)
    committed = replace(record, rows=latents.num_rows, errors=errors.num_rows - sum(record.warnings_by_type.values()),
                        media=dict(sorted(Counter(row["media_type"] for row in latent_rows).items())),
                        captioned=sum(row["caption"] is not None for row in latent_rows), source=source,
                        bytes={"latents": latent_bytes, "errors": error_bytes},
                        timings=replace(record.timings, write_seconds=time.perf_counter() - started),
                        committed_at=time.time())
    write_json(layout.fs, layout.committed(shard), committed.to_dict())
    if layout.fs.exists(layout.given_up(shard)):
        layout.fs.rm(layout.given_up(shard))
    return committed
