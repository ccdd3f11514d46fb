"""``OutputSink``: one output folder's life, in one place.

    sink = OutputSink(url, storage_options)
    sink.check(settings, model_config)      before Ray: "new" or "resumes", else OutputConflict
    lease = sink.lease(run_id, seconds)     one job per output (lease.py)
    state = sink.state()                    committed shards (source tokens) and totals (index.py)
    plan = sink.resume(urls, names, state)  what is left, which committed shards went stale
    sink.open(config, settings, model)      _job.json created, or compared with the one there
    sink.publish(record, rows, errors, metadata) / sink.give_up(url, attempts, reason)
    sink.finish_run(index); sink.write_summary(summary)

A committed shard whose source tar changed since it was encoded (its size and ETag or mtime, in
its commit record) is *stale*: its commit marker is removed before the run starts (readers stop
seeing its latents at once) and it is encoded again; the summary names it. Re-encoding, rather
than refusing, because the new content is what the dataset now holds and a run over a growing
dataset must not stop for it; the marker goes first, so a re-encode that fails leaves the shard
pending or given up, never committed with latents of content that is gone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .index import OutputState, RunIndex, fold
from .layout import OutputLayout, remove_partial_files, shard_name
from .lease import Lease
from .manifest import OutputConflict, check_or_create, clear, code_version, make_manifest, refuse_differences
from .records import CommitRecord, Totals
from .resume import ResumePlan, plan_resume
from .shard_writer import publish_shard
from .sources import source_tokens
from .storage import read_json, write_json

__all__ = ["OutputConflict", "OutputSink", "latents_metadata"]


class OutputSink:
    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.layout = OutputLayout(url, storage_options)
        self.url = self.layout.url
        self._latest_run = 0.0  # start of the newest run file seen: a new one must sort after it

    # -- identity --------------------------------------------------------------------------
    def check(self, settings: dict[str, Any], model_config: dict[str, Any] | None = None) -> str:
        """"new" or "resumes"; OutputConflict if the folder holds other latents. Settings without
        ``dtype`` (resolved on the cluster) and a model without weights (not loaded yet) are
        compared on what they hold: the driver, the dry run and the pre-Ray check all call this."""
        layout = self.layout
        if not layout.exists():
            return "new"
        model = {"config": model_config} if model_config is not None else {}
        refuse_differences(layout, read_json(layout.fs, layout.job_manifest),
                           {"output_settings": settings, "model": model})
        return "resumes"

    def open(self, config: dict[str, Any], settings: dict[str, Any], model: dict[str, Any]) -> str:
        """Creates ``_job.json`` ("created"), or compares with the one there ("resumed")."""
        return check_or_create(self.layout, make_manifest(config, settings, model))

    def clear(self) -> None:
        clear(self.layout)

    def lease(self, run_id: str, seconds: float, log: Callable[[str], None] = print, **about: Any) -> Lease:
        return Lease(self.layout, run_id, seconds, log, **about)

    # -- state -----------------------------------------------------------------------------
    def state(self) -> OutputState:
        """Committed shards and totals: one listing of ``_committed/`` and ``_runs/``, the run files,
        and the commit records only of shards no finished run accounts for."""
        layout = self.layout
        layout.refresh()
        indexes = []
        for name in layout.run_index_files():
            try:
                indexes.append(RunIndex.from_dict(read_json(layout.fs, layout.run_index(name))))
            except FileNotFoundError:
                continue
        self._latest_run = max([self._latest_run, *(index.started_at for index in indexes)])
        return fold(layout.committed_shards(), indexes, layout.read_commit_records, now=self._next_start())

    def _next_start(self) -> float:
        """Now, or just after the newest run file if this machine's clock is behind the one that wrote it."""
        self._latest_run = max(time.time(), self._latest_run + 0.001)
        return self._latest_run

    def after_run(self, before: OutputState, run: RunIndex | None, retracted: list[str]) -> OutputState:
        """The state once ``run`` has committed its shards, without listing the output again: while
        this job holds the lease, only it changes the output. After retracting stale shards the
        run files no longer add up, and the state is read again."""
        if retracted:
            return self.state()
        totals = Totals()
        totals.merge(before.totals)
        shards = dict(before.shards)
        if run is not None:
            totals.merge(run.totals)
            shards.update(run.shards)
        return OutputState(shards, totals, None)

    def resume(self, urls: list[str], names: list[str], state: OutputState,
               storage_options: dict[str, Any] | None = None) -> ResumePlan:
        """What is left to encode, and every input shard's source token (one listing per input
        folder): committed shards are checked against it, and this run's file records it."""
        return plan_resume(urls, names, state.shards, source_tokens(urls, storage_options))

    def retract(self, shards: list[str]) -> None:
        """Removes the commit markers of stale shards: readers stop seeing their latents now."""
        for shard in shards:
            path = self.layout.committed(shard)
            if self.layout.fs.exists(path):
                self.layout.fs.rm(path)
        self.layout.refresh()

    def remove_partial_files(self) -> None:
        remove_partial_files(self.layout)

    def adopt(self, state: OutputState) -> None:
        """Writes down the shards whose commit records had to be read, so no later run reads them."""
        if state.adopted is not None and state.adopted.shards:
            state.adopted.run_id = f"adopted-{int(state.adopted.started_at)}"
            self.write_index(state.adopted)

    def begin_run(self, run_id: str, planned: list[str]) -> RunIndex:
        """This run's file, naming what it may commit (so a crash leaves them accounted for)."""
        index = RunIndex(run_id, self._next_start(), complete=False, planned=planned)
        self.write_index(index)
        return index

    def finish_run(self, index: RunIndex, records: list[CommitRecord], sources: dict[str, str | None]) -> None:
        """``sources``: this run's shard URL -> token at planning (a tar changed during the run then
        differs from the next run's listing, and is re-encoded)."""
        for record in records:
            index.add(record, sources.get(record.url, record.source))
        index.complete, index.planned = True, []
        self.write_index(index)

    def write_index(self, index: RunIndex) -> None:
        write_json(self.layout.fs, self.layout.run_index(index.file_name), index.to_dict())

    # -- shards ----------------------------------------------------------------------------
    def publish(self, record: CommitRecord, latent_rows: list[dict[str, Any]], error_rows: list[dict[str, Any]],
                metadata: dict[str, Any], storage_options: dict[str, Any] | None = None) -> CommitRecord:
        return publish_shard(self.layout, record.shard, latent_rows, error_rows, metadata, record, storage_options)

    def give_up(self, url: str, attempts: int, reason: str) -> str:
        """Writes ``_given_up/<shard>.json``; returns its URL (for a report if writing fails)."""
        path = self.layout.given_up(shard_name(url))
        write_json(self.layout.fs, path, {"url": url, "attempts": attempts, "last_error": reason, "at": time.time()})
        return self.layout.url_of(path)

    def given_up(self) -> list[str]:
        return self.layout.given_up_shards()

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json(self.layout.fs, self.layout.summary, summary)


def latents_metadata(model_source: str, vae: Any, weights_sha256: str, *, store: str, latent_dtype: str,
                     compute_dtype: str, fingerprint: str) -> dict[str, Any]:
    """The key-value metadata of every Parquet file of an output (``vae``: a loaded WFVAE)."""
    scale, shift = vae.config.latent_scale_shift()
    return {"model": model_source, "weights_sha256": weights_sha256, "model_config": vae.config.to_dict(),
            "scale": scale, "shift": shift, "stored": store, "latent_dtype": latent_dtype,
            "compute_dtype": compute_dtype, "temporal_compression": vae.temporal_compression,
            "spatial_compression": vae.spatial_compression, "latent_channels": vae.latent_channels,
            "fingerprint": fingerprint, "code_version": code_version()}
