"""``OutputSink``: one output folder's whole life, in one object (as Ray Data's datasinks own theirs).

The driver calls its steps in this order; the sink travels to the encoder actors (as its URL and
storage options: the driver's state stays behind), which publish shards through it.

    sink = OutputSink(url, storage_options)
    with sink.hold(run_id, lease_seconds, ...):      the lease: one job per output (and proof it is writable)
        plan = sink.start(urls, names, identity)     the identity checked, the state read, what is left worked
                                                     out, stale shards withdrawn
        sink.begin(manifest)                         once the model is loaded: _job.json created or compared
        ...  sink.publish(record, rows, ...)         an encoder actor, for each shard it encodes
             sink.committed(record)                  the driver, for each shard committed: the run's file is
                                                     updated as it goes (index.py)
             sink.give_up(url, attempts, reason)     the driver, for a shard that failed too often
        summary = sink.finish(...)                   the run's file, the state after it, _summary.json

``check`` and ``survey`` are ``start``'s read-only parts, for the dry run. With ``--overwrite``
nothing is read, and the output is cleared only by ``begin``, once the encoders have loaded the model.

A committed shard whose source tar changed since it was encoded (its size and ETag or mtime, in
its commit record) is *stale*: its commit marker is removed before the run starts (readers stop
seeing its latents at once) and it is encoded again; the summary names it. Re-encoding, rather
than refusing, because the new content is what the dataset now holds and a run over a growing
dataset must not stop for it; the marker goes first, so a re-encode that fails leaves the shard
pending or given up, never committed with latents of content that is gone.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .index import UPDATE_COMMITS, UPDATE_SECONDS, OutputState, RunIndex, fold
from .layout import OutputLayout, remove_partial_files, shard_name
from .lease import Lease, OutputBusy, busy
from .manifest import Manifest, OutputConflict, OutputIdentity, code_version
from .records import Balance, CommitRecord, GivenUp, RunRecord, Totals
from .resume import ResumePlan, plan_resume
from .shard_writer import TextRows, publish_shard
from .sources import source_tokens
from .storage import create_exclusively, is_local, json_bytes, read_json, write_json
from .summary import OutputSummary, summarize

__all__ = ["OutputBusy", "OutputConflict", "OutputSink", "OutputUnwritable", "latents_metadata"]


class OutputUnwritable(ValueError):
    """The output cannot be written where it was asked for; the message says why and what is allowed."""


@dataclass
class _Run:
    """The driver's side of one run: what the sink knows between ``hold`` and ``finish``."""

    run_id: str
    lease: Lease
    log: Callable[[str], None]
    urls: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # the input's shards that do not exist (allowed)
    plan: ResumePlan = field(default_factory=ResumePlan)
    state: OutputState | None = None  # as read at the start (None: cleared by --overwrite, or not read)
    overwrite: bool = False
    whole: RunIndex | None = None  # this run's file, once begun: every shard it committed
    update: RunIndex | None = None  # what it committed since its file was last updated
    updated_at: float = 0.0
    records: list[CommitRecord] = field(default_factory=list)
    given_up: list[str] = field(default_factory=list)
    write_failures: list[str] = field(default_factory=list)


class OutputSink:
    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.layout = OutputLayout(url, storage_options)
        self.url = self.layout.url
        self._run: _Run | None = None
        self._latest_run = 0.0  # start of the newest run file seen: a new one must sort after it

    @property
    def local(self) -> bool:
        """Whether the output is on this machine's file system (a cluster's nodes each have their own)."""
        return is_local(self.layout.fs)

    def __reduce__(self):  # what travels to the actors: where the output is, not the driver's run
        return OutputSink, (self.layout.url, self.layout.storage_options)

    # -- before anything starts: the driver and the dry run ----------------------------------
    def check(self, identity: OutputIdentity) -> str:
        """"new" or "resumes"; OutputConflict if the folder holds other latents. Settings without ``dtype``
        (resolved on the cluster) and a model without weights (not loaded yet) are compared on what they hold."""
        self.check_place()
        if not self.layout.exists():
            return "new"
        self.manifest().refuse(self.url, identity)
        return "resumes"

    def exists(self) -> bool:
        """Whether a job has begun this output (it has a ``_job.json``)."""
        return self.layout.exists()

    def manifest(self) -> Manifest:
        return Manifest.from_dict(read_json(self.layout.fs, self.layout.job_manifest))

    def preflight(self, identity: OutputIdentity, *, overwrite: bool = False, wait: bool = False) -> str:
        """What ``hold`` and ``start`` check, without taking the output or leaving anything in it: that it can be
        written (a probe file, removed at once: OutputUnwritable), that no other job holds it (OutputBusy, unless
        ``wait``: the run would wait for it), and its identity. Returns "new", "resumes" or "overwritten"."""
        self.check_place()
        self._probe_write()
        if not wait and (holder := Lease(self.layout, "preflight", 0).holder()) is not None:
            raise busy(self.url, holder)
        if overwrite and self.exists():
            return "overwritten (--overwrite deletes what it holds)"
        return self.check(identity)

    def _probe_write(self) -> None:
        fs, root = self.layout.fs, self.layout.root
        try:
            if self.local:  # in the nearest folder that exists: the run creates the rest
                folder = root
                while not os.path.exists(folder):
                    folder = os.path.dirname(folder) or "/"
                handle, path = tempfile.mkstemp(prefix=".write-probe-", dir=folder)
                os.close(handle)
                os.unlink(path)
                return
            probe = f"{root}/_write_probe-{uuid.uuid4().hex[:8]}"
            fs.pipe_file(probe, b"")
            fs.rm(probe)
        except OSError as err:
            raise OutputUnwritable(f"--output: cannot write to {self.url} ({type(err).__name__}: {err}); choose a "
                                   "folder or bucket this job may write to") from None

    def survey(self, urls: list[str], names: list[str], overwrite: bool = False) -> ResumePlan:
        """What a run would find: the input's shards committed (and current), stale, given up and left to encode."""
        tokens = source_tokens(urls, self.layout.storage_options)
        if overwrite:
            return plan_resume(urls, names, {}, tokens)
        plan = plan_resume(urls, names, self.state().shards, tokens)
        listed = set(names)
        plan.given_up = [name for name in self.layout.given_up_shards() if name in listed]
        return plan

    # -- the driver's run ---------------------------------------------------------------------
    @contextmanager
    def hold(self, run_id: str, seconds: float, *, wait: bool = False, stop: threading.Event | None = None,
             log: Callable[[str], None] = print, input: str | None = None) -> Iterator[None]:
        """The output's lease for the run: taken (which proves the output writable), kept by a heartbeat,
        given back at the end. OutputBusy if another job holds it; OutputUnwritable if it cannot be written."""
        self.check_place()
        lease = Lease(self.layout, run_id, seconds, log, input=input)
        try:
            lease.acquire(wait=wait, stop=stop)
        except OSError as err:
            raise OutputUnwritable(f"--output: cannot write to {self.url} ({type(err).__name__}: {err}); choose a "
                                   "folder or bucket this job may write to") from None
        lease.start_heartbeat()
        self._run = _Run(run_id, lease, log)
        try:
            yield
        finally:
            lease.release()
            self._run = None

    def check_place(self) -> None:
        """A local output must be a folder (or nothing yet)."""
        if is_local(self.layout.fs) and os.path.exists(self.layout.root) and not os.path.isdir(self.layout.root):
            raise OutputUnwritable(f"--output: {self.url} is a file, not a folder; choose a folder (it is created if "
                                   "missing)")

    def start(self, urls: list[str], names: list[str], identity: OutputIdentity, *, overwrite: bool = False,
              missing: list[str] | None = None) -> ResumePlan:
        """What is left to encode. The output's identity is checked (OutputConflict), leftovers of interrupted
        attempts removed, its state read (a killed run's files written down once), stale shards withdrawn.
        ``missing``: the input's shards that do not exist, which the run goes on without (the summary counts them)."""
        run = self._active()
        run.urls, run.names, run.overwrite, run.missing = urls, names, overwrite, list(missing or [])
        if overwrite:
            run.plan = self.survey(urls, names, overwrite=True)
            return run.plan
        self.check(identity)
        remove_partial_files(self.layout)
        run.state = self.state()
        self._adopt(run.state)
        run.plan = plan_resume(urls, names, run.state.shards, source_tokens(urls, self.layout.storage_options))
        run.plan.records_read = run.state.records_read
        for shard in run.plan.stale:
            if self.layout.fs.exists(path := self.layout.committed(shard)):
                self.layout.fs.rm(path)
        self.layout.refresh()
        return run.plan

    def begin(self, manifest: Manifest) -> str:
        """``_job.json`` created ("created") or compared with the one there ("resumed"), before the first shard is
        published. With ``--overwrite`` the output is cleared first."""
        run = self._active()
        if run.overwrite:
            self.layout.clear()
            run.state = OutputState({}, Totals())
        elif not self.layout.exists() and self.layout.has_results():
            raise OutputConflict(f"{self.url} already holds files but no _job.json; choose an empty output folder, "
                                 "or pass --overwrite to replace its contents")
        opened = "created"
        if not create_exclusively(self.layout.fs, self.layout.job_manifest, json_bytes(manifest.to_dict())):
            self.manifest().refuse(self.url, manifest.identity)
            opened = "resumed"
        run.whole = RunIndex(run.run_id, self._next_start())
        run.update = RunIndex(run.run_id, run.whole.started_at, part=1)
        run.updated_at = time.monotonic()
        return opened

    def committed(self, record: CommitRecord) -> None:
        """A shard this run committed: kept in this run's file (its source token as planned: a tar changed during
        the run then differs from the next run's listing, and is encoded again)."""
        run = self._active()
        source = run.plan.tokens.get(record.url, record.source)
        run.records.append(record)
        run.whole.add(record, source)
        run.update.add(record, source)
        self.save_progress()

    def save_progress(self) -> None:
        """Writes what this run committed since its last update, every UPDATE_COMMITS commits and every
        UPDATE_SECONDS: a run killed now costs the next one at most those commit records."""
        run = self._active()
        update = run.update
        if update is None or not update.shards:
            return
        if len(update.shards) < UPDATE_COMMITS and time.monotonic() - run.updated_at < UPDATE_SECONDS:
            return
        try:
            write_json(self.layout.fs, self.layout.run_index(update.file_name), update.to_dict(), compact=True)
        except Exception as err:  # noqa: BLE001 - kept, and tried again at the next update
            run.log(f"warning: could not update this run's file {update.file_name}: {type(err).__name__}: {err}")
            return
        run.update = RunIndex(run.run_id, update.started_at, part=update.part + 1)
        run.updated_at = time.monotonic()

    def give_up(self, url: str, attempts: int, reason: str) -> None:
        """Records a shard given up (``_given_up/<shard>.json``); a failure to write it is reported, not raised."""
        run = self._active()
        name = shard_name(url)
        run.given_up.append(name)
        path = self.layout.given_up(name)
        try:
            write_json(self.layout.fs, path, GivenUp(url, attempts, reason, time.time()).to_dict())
        except Exception as err:  # noqa: BLE001 - the exit status already says it
            self._failed_write(path, err, "record the given-up shard in")

    def lease_lost(self) -> str | None:
        """Why this job no longer holds the output (another job took it over), or None."""
        lease = self._active().lease
        return lease.lost_reason if lease.lost.is_set() else None

    @property
    def records(self) -> list[CommitRecord]:
        """The commit records of this run so far."""
        return list(self._active().records)

    def finish(self, *, seconds: float, stopped_by: str | None = None, abandoned: list[str] | None = None,
               balance: Balance | None = None) -> OutputSummary:
        """This run's file (its updates removed), the output's state after it, ``_summary.json``: the summary."""
        run = self._active()
        if run.whole is not None:
            try:
                path = self.layout.run_index(run.whole.file_name)
                write_json(self.layout.fs, path, run.whole.to_dict(), compact=True)
                for part in range(1, run.update.part):
                    self.layout.fs.rm(self.layout.run_index(RunIndex(run.run_id, run.whole.started_at, part).file_name))
            except Exception as err:  # noqa: BLE001 - the next run reads this run's commit records instead
                self._failed_write(self.layout.run_index(run.whole.file_name), err)
        if run.state is None or run.plan.stale:  # not read, or the run files no longer add up: read again
            state = self.state()
            self._adopt(state)
        else:
            state = run.state.with_run(run.whole) if run.whole else run.state
        clips = sum(record.rows for record in run.records)
        this_run = RunRecord(run.run_id, round(seconds, 3), len(run.records), len(run.plan.committed), clips,
                             round(clips / seconds, 3) if seconds else 0.0, list(run.given_up), stopped_by,
                             list(abandoned or []), run.write_failures, list(run.plan.stale), balance,
                             run.plan.records_read, run.missing)
        summary = summarize(self.url, state, [*self.layout.given_up_shards(), *run.given_up], run.names, this_run)
        try:
            write_json(self.layout.fs, self.layout.summary, summary.to_dict())
        except Exception as err:  # noqa: BLE001 - the summary is printed anyway; the exit status must survive
            self._failed_write(self.layout.summary, err)
        return summary

    # -- the encoder actors ---------------------------------------------------------------------
    def publish(self, record: CommitRecord, latent_rows: list[dict[str, Any]], error_rows: list[dict[str, Any]],
                metadata: dict[str, Any], text: TextRows | None = None) -> CommitRecord:
        """A shard's text embeddings, latents and errors, then its commit marker (shard_writer.py); returns the
        record written."""
        return publish_shard(self.layout, record, latent_rows, error_rows, metadata, text)

    # -- inside ---------------------------------------------------------------------------------
    def _active(self) -> _Run:
        if self._run is None:
            raise RuntimeError("the output's run steps need its lease: call them inside `with sink.hold(...)`")
        return self._run

    def state(self) -> OutputState:
        """Committed shards and totals (read-only: readers call it too): one listing of ``_committed/`` and
        ``_runs/``, the run files, and the commit records only of shards no run file accounts for."""
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

    def _adopt(self, state: OutputState) -> None:
        """Writes down what killed runs left and the commit records that had to be read, then removes the killed
        runs' files: no later run reads them again."""
        if state.adopted is None:
            return
        adopted = state.adopted
        adopted.run_id = f"adopted-{int(adopted.started_at)}"
        if adopted.shards:
            write_json(self.layout.fs, self.layout.run_index(adopted.file_name), adopted.to_dict(), compact=True)
        for name in state.replaced:
            try:
                self.layout.fs.rm(self.layout.run_index(name))
            except FileNotFoundError:
                pass
        state.adopted, state.replaced = None, []

    def _next_start(self) -> float:
        """Now, or just after the newest run file if this machine's clock is behind the one that wrote it."""
        self._latest_run = max(time.time(), self._latest_run + 0.001)
        return self._latest_run

    def _failed_write(self, path: str, err: BaseException, what: str = "write") -> None:
        url = self.layout.url_of(path)
        self._active().write_failures.append(f"{url}: {type(err).__name__}: {err}")
        self._active().log(f"warning: could not {what} {url}: {type(err).__name__}: {err}")


def latents_metadata(vae: Any, model: Any, *, store: str, latent_dtype: str, compute_dtype: str,
                     fingerprint: str) -> dict[str, Any]:
    """The key-value metadata of every Parquet file of an output (``vae``: a loaded WFVAE; ``model``: its
    ModelIdentity)."""
    scale, shift = vae.config.latent_scale_shift()
    return {"model": model.source, "weights_sha256": model.weights_sha256, "model_config": vae.config.to_dict(),
            "scale": scale, "shift": shift, "stored": store, "latent_dtype": latent_dtype,
            "compute_dtype": compute_dtype, "temporal_compression": vae.temporal_compression,
            "spatial_compression": vae.spatial_compression, "latent_channels": vae.latent_channels,
            "fingerprint": fingerprint, "code_version": code_version()}
