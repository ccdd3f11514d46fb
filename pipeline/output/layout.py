"""The output folder of a job, on any fsspec storage.

    OUT/_lease/<generation>.json      the running job's hold on the folder (see lease.py)
    OUT/_job.json                     job config, model identity, code version
    OUT/latents/<shard>.parquet       one row per clip
    OUT/errors/<shard>.parquet        one row per failed sample
    OUT/_committed/<shard>.json       written last: the shard is complete
    OUT/_given_up/<shard>.json        a shard that failed max-shard-attempts times
    OUT/_summary.json                 totals and per-channel latent statistics

A shard counts as done only through its commit marker; files without one are leftovers
of an interrupted attempt and are overwritten by the next.
"""

from __future__ import annotations

import json
from typing import Any

from .storage import filesystem


def shard_name(url: str) -> str:
    """Output name of a shard: its file name without the archive extension."""
    name = url.rstrip("/").rsplit("/", 1)[-1]
    for suffix in (".tar.gz", ".tgz", ".tar"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


class OutputLayout:
    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.url = url.rstrip("/")
        self.storage_options = dict(storage_options or {})
        self.fs, self.root = filesystem(self.url, self.storage_options)

    # -- paths (without protocol, for self.fs) -----------------------------------------
    @property
    def job_manifest(self) -> str:
        return f"{self.root}/_job.json"

    @property
    def summary(self) -> str:
        return f"{self.root}/_summary.json"

    def latents(self, shard: str) -> str:
        return f"{self.root}/latents/{shard}.parquet"

    def errors(self, shard: str) -> str:
        return f"{self.root}/errors/{shard}.parquet"

    def committed(self, shard: str) -> str:
        return f"{self.root}/_committed/{shard}.json"

    def given_up(self, shard: str) -> str:
        return f"{self.root}/_given_up/{shard}.json"

    def url_of(self, path: str) -> str:
        """Full URL (with protocol) of a path of this layout, e.g. for pyarrow or readers."""
        return self.url + path[len(self.root):]

    # -- state ---------------------------------------------------------------------------
    def _names_in(self, folder: str, suffix: str) -> list[str]:
        path = f"{self.root}/{folder}"
        if not self.fs.exists(path):
            return []
        names = [p.rsplit("/", 1)[-1] for p in self.fs.ls(path, detail=False)]
        return sorted(n[: -len(suffix)] for n in names if n.endswith(suffix))

    def committed_shards(self) -> list[str]:
        return self._names_in("_committed", ".json")

    def given_up_shards(self) -> list[str]:
        return self._names_in("_given_up", ".json")

    def commit_records(self) -> dict[str, dict[str, Any]]:
        """All commit markers by shard, fetched concurrently (object stores: one request each)."""
        names = self.committed_shards()
        if not names:
            return {}
        paths = [self.committed(name) for name in names]
        payloads = self.fs.cat(paths)
        if not isinstance(payloads, dict):  # a single path returns bytes
            payloads = {paths[0]: payloads}
        by_path = {self.fs._strip_protocol(p): v for p, v in payloads.items()}
        return {name: json.loads(by_path[self.fs._strip_protocol(path)]) for name, path in zip(names, paths)}

    def exists(self) -> bool:
        return self.fs.exists(self.job_manifest)

    def refresh(self) -> None:
        """Forget cached listings (object stores cache directory listings)."""
        self.fs.invalidate_cache()


def remove_partial_files(layout: OutputLayout) -> None:
    """Delete temporary files an interrupted run left beside its outputs (local storage only;
    object stores never publish a partial upload)."""
    for folder in ("latents", "errors", "_committed"):
        path = f"{layout.root}/{folder}"
        if layout.fs.exists(path):
            for leftover in layout.fs.glob(f"{path}/*.tmp-*"):
                layout.fs.rm(leftover)
    layout.refresh()
