"""The committed Parquet files of an output folder, for any tool that reads Parquet.

    files = committed_files("s3://bucket/latents", storage_options)
    ray.data.read_parquet(files.paths, filesystem=files.filesystem)
    pyarrow.dataset.dataset(files.paths, format="parquet", filesystem=files.filesystem)

Only shards with a commit marker are listed: a latents file without one is a leftover of an
interrupted attempt (incomplete, or about to be rewritten), and a tool that globs
``latents/*.parquet`` would read it. ``filesystem`` is a pyarrow filesystem over the same fsspec
storage and options the job used (endpoint, credentials), so readers need no options of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow.fs as pafs

from .layout import OutputLayout
from .storage import is_local

KINDS = ("latents", "errors")


@dataclass(frozen=True)
class CommittedFiles:
    url: str  # the output folder
    shards: tuple[str, ...]  # committed shard names, sorted
    paths: tuple[str, ...]  # their files, as paths of ``filesystem``
    urls: tuple[str, ...]  # the same files as full URLs (s3://..., or local paths)
    filesystem: pafs.FileSystem

    def __len__(self) -> int:
        return len(self.paths)


def committed_files(url: str, storage_options: dict[str, Any] | None = None,
                    kind: str = "latents") -> CommittedFiles:
    """The ``latents`` (or ``errors``) Parquet files of the shards committed when called, in shard
    name order. An empty output (or one not started) gives no files; a folder that is not an
    output of jobs/encode_dataset.py raises ``FileNotFoundError``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    layout = OutputLayout(url, storage_options)
    if not layout.exists():
        raise FileNotFoundError(f"{url} has no _job.json: it is not an output folder of jobs/encode_dataset.py, "
                                "or that job has not started writing to it")
    shards = tuple(layout.committed_shards())
    path_of = layout.latents if kind == "latents" else layout.errors
    paths = tuple(path_of(shard) for shard in shards)
    return CommittedFiles(layout.url, shards, paths, tuple(layout.url_of(p) for p in paths),
                          arrow_filesystem(layout))


def arrow_filesystem(layout: OutputLayout) -> pafs.FileSystem:
    """pyarrow's own local filesystem for local folders (fastest), else fsspec's wrapped for pyarrow."""
    if is_local(layout.fs):
        return pafs.LocalFileSystem()
    return pafs.PyFileSystem(pafs.FSSpecHandler(layout.fs))
