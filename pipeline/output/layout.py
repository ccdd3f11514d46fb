"""The output folder of a job, on any fsspec storage.

    OUT/_lease/<generation>.json      the running job's hold on the folder (see lease.py)
    OUT/_job.json                     job config, model identity, code version
    OUT/latents/<shard>.parquet       one row per clip
    OUT/errors/<shard>.parquet        one row per failed sample (and per warning about one)
    OUT/text/<shard>.parquet          with a text encoder: one row per captioned sample, its embedding
    OUT/_committed/<shard>.json       written last: the shard is complete
    OUT/_given_up/<shard>.json        a shard that failed max-shard-attempts times
    OUT/_runs/<started>-<run>[.<part>].json   each run's commit records added up (see index.py)
    OUT/_summary.json                 totals and per-channel latent statistics

A shard counts as done only through its commit marker; files without one are leftovers
of an interrupted attempt and are overwritten by the next.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

from .records import CommitRecord, GivenUp
from .storage import filesystem, is_local

READ_BATCH = 1000  # commit records read concurrently at a time (bounded memory)
FOLDERS = ("latents", "errors", "text", "_committed", "_given_up", "_runs")  # what a job writes, besides its files


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

    def text(self, shard: str) -> str:
        return f"{self.root}/text/{shard}.parquet"

    def committed(self, shard: str) -> str:
        return f"{self.root}/_committed/{shard}.json"

    def given_up(self, shard: str) -> str:
        return f"{self.root}/_given_up/{shard}.json"

    def run_index(self, file_name: str) -> str:
        return f"{self.root}/_runs/{file_name}"

    def url_of(self, path: str) -> str:
        """Full URL (with protocol) of a path of this layout, e.g. for pyarrow or readers."""
        return self.url + path[len(self.root):]

    # -- state ---------------------------------------------------------------------------
    def _names_in(self, folder: str, suffix: str) -> list[str]:
        """One listing (object stores: a request per 1,000 names; local: names only, no stat each)."""
        path = f"{self.root}/{folder}"
        if is_local(self.fs):
            try:
                names = os.listdir(path)
            except (FileNotFoundError, NotADirectoryError):
                return []
        elif not self.fs.exists(path):
            return []
        else:
            names = [p.rsplit("/", 1)[-1] for p in self.fs.ls(path, detail=False)]
        return sorted(n[: -len(suffix)] for n in names if n.endswith(suffix))

    def committed_shards(self) -> list[str]:
        return self._names_in("_committed", ".json")

    def given_up_shards(self) -> list[str]:
        return self._names_in("_given_up", ".json")

    def run_index_files(self) -> list[str]:
        return [f"{name}.json" for name in self._names_in("_runs", ".json")]

    def read_commit_records(self, names: list[str] | None = None) -> Iterator[CommitRecord]:
        """The commit records of ``names`` (every committed shard's without), READ_BATCH at a time, fetched
        concurrently (object stores: one request each); a marker removed since it was listed is skipped."""
        names = self.committed_shards() if names is None else names
        for start in range(0, len(names), READ_BATCH):
            batch = names[start:start + READ_BATCH]
            for _, data in self._read_json_files([self.committed(n) for n in batch], batch):
                yield CommitRecord.from_dict(data)

    def read_given_up(self, names: list[str] | None = None) -> dict[str, GivenUp]:
        """The given-up records of ``names`` (all without), by shard."""
        names = self.given_up_shards() if names is None else names
        return {name: GivenUp.from_dict(data)
                for name, data in self._read_json_files([self.given_up(n) for n in names], names)}

    def latents_files(self) -> list[str]:
        """The shard names of every latents file, committed or not (one listing)."""
        return self._names_in("latents", ".parquet")

    def _read_json_files(self, paths: list[str], names: list[str]) -> Iterator[tuple[str, dict[str, Any]]]:
        if not paths:
            return
        payloads = self.fs.cat(paths, on_error="omit")
        if not isinstance(payloads, dict):  # a single path returns bytes
            payloads = {paths[0]: payloads}
        by_path = {self.fs._strip_protocol(p): v for p, v in payloads.items()}
        for name, path in zip(names, paths):
            payload = by_path.get(self.fs._strip_protocol(path))
            if isinstance(payload, (bytes, str)):
                yield name, json.loads(payload)

    def exists(self) -> bool:
        return self.fs.exists(self.job_manifest)

    def has_results(self) -> bool:
        """Latents or commit markers, with or without a ``_job.json``."""
        return any(self.fs.exists(f"{self.root}/{folder}") for folder in ("latents", "_committed"))

    def clear(self) -> None:
        """Delete a job's output (not the lease of the job doing it)."""
        for folder in FOLDERS:
            path = f"{self.root}/{folder}"
            if self.fs.exists(path):
                self.fs.rm(path, recursive=True)
        for path in (self.job_manifest, self.summary):
            if self.fs.exists(path):
                self.fs.rm(path)
        self.refresh()

    def refresh(self) -> None:
        """Forget cached listings (object stores cache directory listings)."""
        self.fs.invalidate_cache()


def remove_partial_files(layout: OutputLayout) -> None:
    """Delete temporary files an interrupted run left beside its outputs (local storage only;
    object stores never publish a partial upload, and listing them would cost requests)."""
    if not is_local(layout.fs):
        return
    for folder in ("latents", "errors", "text", "_committed", "_runs"):
        path = f"{layout.root}/{folder}"
        try:
            names = os.listdir(path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for name in names:
            if ".tmp-" in name:
                os.remove(f"{path}/{name}")
    layout.refresh()
