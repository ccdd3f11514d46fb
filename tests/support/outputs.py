"""Reading what a job wrote, with pyarrow and fsspec alone (not the code under test), for tests to compare."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import fsspec
import pyarrow.parquet as pq


def read_rows(output: str | Path, kind: str = "latents", shards: Iterable[str] | None = None,
              storage_options: dict | None = None) -> list[dict]:
    """The rows of an output's ``latents/`` or ``errors/`` files (all, or those of ``shards``), in shard-name
    then file order: one reader, so every test compares the same thing."""
    fs, root = fsspec.core.url_to_fs(str(output), **(storage_options or {}))
    if shards is None:
        paths = sorted(fs.glob(f"{root}/{kind}/*.parquet"))
    else:
        paths = [f"{root}/{kind}/{name}.parquet" for name in sorted(shards)]
    return [row for path in paths for row in pq.read_table(path, filesystem=fs).to_pylist()]


def read_summary(output: str | Path, storage_options: dict | None = None) -> dict:
    """The run's ``_summary.json``: the values behind the summary the job prints, to assert on instead of its words."""
    fs, root = fsspec.core.url_to_fs(str(output), **(storage_options or {}))
    return json.loads(fs.cat(f"{root}/_summary.json"))


def shards_by_state(summary: dict) -> tuple[int, int, int, int]:
    """(total, committed, given up, pending) shards of a summary as read from ``_summary.json``; the output's other
    counts (committed shards the input no longer names, input shards missing) must be 0."""
    shards = summary["shards"]
    assert (shards["not_in_input"], shards["missing"]) == (0, 0), shards
    return shards["total"], shards["committed"], shards["given_up"], shards["pending"]


def shard_counts(output: str | Path, storage_options: dict | None = None) -> tuple[int, int, int]:
    """(shards in the input, already committed, encoded) by the output's last run, from its summary: the values
    of the job's "N shards, M already committed, K to encode" line."""
    summary = read_summary(output, storage_options)
    return summary["shards"]["total"], summary["this_run"]["shards_skipped"], summary["this_run"]["shards_encoded"]


def ids(rows) -> list[tuple[str, int]]:
    """(key, clip) of rows or samples: what identifies a clip."""
    return [(row["key"], row["clip"]) for row in rows]
