"""The job driver: check everything, list shards, skip committed ones, hand the rest to encoder actors.

Before Ray starts, every setting is checked and the job takes the output's lease (one job per
output; this also proves the output writable); an output with nothing left is answered without
Ray. Then the actors start, the output's identity is recorded, ``dispatch`` hands out the shards,
and the run ends with its record and the summary (also after SIGTERM/SIGINT).
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayActorError

from wfvae.config import WFVAEConfig
from wfvae.loading import read_config

from ..output.layout import shard_name
from ..output.lease import Lease, OutputBusy
from ..output.manifest import OutputConflict, fingerprint
from ..output.index import RunIndex
from ..output.records import CommitRecord, RunRecord
from ..output.resume import ResumePlan, duplicate_names
from ..output.sink import OutputSink
from ..output.storage import is_local
from ..reading import list_shards
from ..reading.records import describe
from .config import ConfigError, JobConfig, check_against_model
from .decode_capacity import ENCODER_CPUS, DecodeWorkers, NoDecodeCPU
from .dispatch import Outcome, dispatch
from .encoder_actor import CONCURRENCY_GROUPS, EncoderActor, resolve_dtype
from .errors import JobError
from .stopping import StopRequest
from .summary import build_summary, format_summary

NAMESPACE = "wfvae-latents"
CONNECT_TIMEOUT = 3.0  # seconds for a Ray address to answer before it is called dead


def connect(address: str | None, log: Callable[[str], None]) -> None:
    """Join the given cluster, else the running one (or the one ``ray job submit`` set), else start locally.

    Ray itself retries an address that does not answer for minutes. An address the user asked
    for (``--ray-address`` or RAY_ADDRESS) that does not answer fails here within seconds; a
    cluster merely recorded in Ray's temp folder by a runtime that has since died is ignored,
    and a local runtime is started, as if no cluster had been found.
    """
    if ray.is_initialized():
        return
    asked = address or os.environ.get("RAY_ADDRESS") or None
    if asked:
        if not _answers(asked):
            raise JobError(f"nothing answers at the Ray address {asked!r} (from "
                           f"{'--ray-address' if address else 'RAY_ADDRESS'}) within {CONNECT_TIMEOUT:g} s: start "
                           "the cluster (ray start --head), fix the address, or leave it out to run on a local "
                           "Ray runtime")
        ray.init(address=asked, namespace=NAMESPACE, logging_level="warning")
        return
    recorded = _recorded_cluster()
    if recorded and not _answers(recorded):
        log(f"Ray's record of a running cluster ({_record_file()}: {recorded}) is stale, nothing answers there "
            "(a runtime that crashed leaves it behind): starting a local Ray runtime instead")
        ray.init(address="local", namespace=NAMESPACE, logging_level="warning")
        return
    ray.init(namespace=NAMESPACE, logging_level="warning")


def _record_file() -> Path:
    try:
        from ray._common.utils import get_ray_address_file

        return Path(get_ray_address_file(None))
    except ImportError:  # pragma: no cover - Ray moved it
        return Path(os.environ.get("RAY_TMPDIR", "/tmp")) / "ray" / "ray_current_cluster"


def _recorded_cluster() -> str | None:
    try:
        return _record_file().read_text().strip() or None
    except OSError:
        return None


def _answers(address: str) -> bool:
    """Whether host:port (or ray://host:port) accepts a connection; "auto"/"local" are Ray's to resolve."""
    if address in ("auto", "local") or address.startswith(("http://", "https://")):
        return True
    hostport = address.split("://", 1)[-1].rsplit("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    if not port.isdigit():
        return True  # not host:port: let Ray say what is wrong with it
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=CONNECT_TIMEOUT):
            return True
    except OSError:
        return False


def model_config(model: str, storage_options: dict[str, Any] | None = None) -> WFVAEConfig:
    """The model's config.json alone: enough to check settings before any actor loads weights."""
    try:
        return read_config(model, storage_options)
    except (FileNotFoundError, ValueError) as err:
        raise ConfigError(f"--model: {err}") from None


class Plan:
    """What this run will do, decided before any actor starts."""

    def __init__(self, job: JobConfig) -> None:
        self.job = job
        self.sink = OutputSink(job.where.output, job.where.storage_options)
        self.layout = self.sink.layout
        try:
            urls = list_shards(job.where.input, job.where.storage_options).urls
        except (ValueError, OSError) as err:
            raise ConfigError(f"--input: {err}") from None
        if not urls:
            raise ConfigError(f"--input: {job.where.input!r} matches no shards")
        self.urls = urls
        self.names = [shard_name(u) for u in urls]
        duplicates = duplicate_names(self.names)
        if duplicates:
            raise ConfigError(f"--input: several shards share the file name(s) {duplicates[:5]}; outputs are named "
                              "after shard file names, so run one job (with its own --output) per folder")
        self.model = model_config(job.where.model, job.where.model_options)
        self.read_config = check_against_model(job, self.model.temporal_compression)
        # The input by content, for the record (an output's identity does not include it: datasets grow).
        self.input_shards = {"count": len(urls), "sha256": hashlib.sha256("\n".join(urls).encode()).hexdigest()}

    def place(self, log: Callable[[str], None]) -> None:
        """Actors, decode workers and precision, from the cluster's resources (needs a Ray connection)."""
        job = self.job
        gpus = ray.cluster_resources().get("GPU", 0)
        self.gpus_per_actor = job.run.gpus_per_actor if job.run.gpus_per_actor is not None else (1.0 if gpus else 0.0)
        if self.gpus_per_actor and not gpus:
            log("no GPUs in the cluster yet: encoder actors wait for GPU nodes (autoscaling)")
        default_actors = max(1, int(gpus // self.gpus_per_actor)) if self.gpus_per_actor and gpus else 1
        self.num_actors = job.run.num_actors or default_actors
        self.decode_workers = DecodeWorkers(job.run.decode_workers, self.num_actors)
        if not (self.gpus_per_actor and not gpus):  # (GPU nodes that join bring CPUs too)
            try:
                self.decode_workers.now()
            except NoDecodeCPU as err:
                raise JobError(str(err)) from None
        self.compute_dtype = resolve_dtype(job.latents.dtype, on_gpu=self.gpus_per_actor > 0)
        self.output_settings = {**job.output_settings(), "dtype": self.compute_dtype}
        self.fingerprint = fingerprint(self.output_settings)


def run_job(job: JobConfig, log: Callable[[str], None] = print, stop: StopRequest | None = None) -> dict[str, Any]:
    """Runs the job; returns its summary. ConfigError: a setting is wrong (nothing was started);
    JobError: the job could not run. With ``stop`` (installed by the caller for SIGTERM/SIGINT)
    a signal ends the job early, and the summary says so under ``this_run.stopped_by``."""
    stop = stop or StopRequest()
    plan = Plan(job)  # every setting is checked before Ray starts
    run_id = uuid.uuid4().hex[:8]
    lease = hold_output(plan.sink, job, run_id, log, stop)
    try:
        return _run(plan, lease, run_id, log, stop)
    finally:
        lease.release()


def hold_output(sink: OutputSink, job: JobConfig, run_id: str, log: Callable[[str], None],
                stop: StopRequest) -> Lease:
    """Takes the output's lease (which proves it writable) and starts its heartbeat."""
    layout = sink.layout
    if is_local(layout.fs) and os.path.exists(layout.root) and not os.path.isdir(layout.root):
        raise ConfigError(f"--output: {layout.url} is a file, not a folder; choose a folder (it is created if "
                          "missing)")
    lease = sink.lease(run_id, job.run.lease_seconds, log, input=job.where.input)
    try:
        lease.acquire(wait=job.where.wait, stop=stop.requested)
    except OutputBusy as err:
        raise JobError(str(err)) from None
    except OSError as err:
        raise ConfigError(f"--output: cannot write to {layout.url} ({describe(err)}); choose a folder or bucket "
                          "this job may write to") from None
    lease.start_heartbeat()
    return lease


def _run(plan: Plan, lease: Lease, run_id: str, log: Callable[[str], None], stop: StopRequest) -> dict[str, Any]:
    """Ray starts only when there is work: an output with nothing left to encode is answered from
    the output itself. ``--overwrite`` clears the output once the cluster has been checked."""
    job, sink = plan.job, plan.sink
    started = time.perf_counter()
    resume = None if job.where.overwrite else prepare_output(plan, run_id, log)
    outcome = Outcome()
    index = None
    if resume is None or (resume.todo and not stop.requested.is_set()):
        connect(job.run.ray_address, log)
        stop.install()  # again: ray.init replaced the SIGTERM handler
        plan.place(log)
        _refuse_scattered_output(plan)
        if resume is None:
            resume = prepare_output(plan, run_id, log)
        else:
            _check_settings(plan)  # again, with the dtype the cluster's devices resolve
        todo = resume.todo
        if todo and not stop.requested.is_set():
            index = sink.begin_run(run_id, [shard_name(url) for url in todo])
            _encode(plan, run_id, todo, log, started, stop, lease, outcome)
    elif not resume.todo:
        log(f"nothing left to encode in {sink.url}: answered from the output, without starting Ray")
    return close_output(plan, run_id, resume, index, outcome, time.perf_counter() - started, stop.name, log)


def _encode(plan: Plan, run_id: str, todo: list[str], log: Callable[[str], None], started: float,
            stop: StopRequest, lease: Lease, outcome: Outcome) -> None:
    """Starts the encoder actors, records the model's identity, and hands them the shards."""
    job, sink = plan.job, plan.sink
    actors = _start_actors(plan, run_id, min(plan.num_actors, len(todo)))
    try:
        identities = _wait_for_actors(actors, stop)
        if identities is None:
            return
        model = {"source": job.where.model, "weights_sha256": identities[0]["weights_sha256"],
                 "config": identities[0]["config"], "temporal_compression": identities[0]["temporal_compression"]}
        try:
            opened = sink.open(job.public_dict(), plan.output_settings, model)
        except OutputConflict as err:
            raise ConfigError(str(err)) from None
        log(f"output {sink.url}: {opened}; {len(actors)} encoder actor(s) on "
            f"{identities[0]['device']} ({identities[0]['dtype']}), {plan.decode_workers} decode worker(s) each")
        dispatch(actors, todo, sink, job.run, log, started, stop, lease, outcome)
    finally:
        for actor in actors:
            ray.kill(actor)


def prepare_output(plan: Plan, run_id: str, log: Callable[[str], None]) -> ResumePlan:
    """The driver's work before encoding: the output's identity, its state (run files, and commit
    records only where no finished run accounts for them), and what is left; stale shards are
    withdrawn. Linear in the shard count; on object storage a listing of ``_committed/``."""
    job, sink = plan.job, plan.sink
    if job.where.overwrite:
        sink.clear()
        log(f"--overwrite: removed the previous contents of {sink.url}")
    else:
        check_identity_before_ray(plan)  # a different job's output is refused before anything starts
    sink.remove_partial_files()
    state = sink.state()
    sink.adopt(state)  # shards no run file accounted for (a crashed run's): written down once
    resume = sink.resume(plan.urls, plan.names, state, job.where.storage_options)
    resume.before = state
    log(f"{len(plan.urls)} shards, {resume.skipped} already committed, {len(resume.todo)} to encode "
        f"(run {run_id})")
    if resume.stale:
        log(f"{len(resume.stale)} committed shard(s) changed at their source since they were encoded (size, ETag "
            f"or mtime): their latents are withdrawn and encoded again: {', '.join(resume.stale[:5])}"
            + (" ..." if len(resume.stale) > 5 else ""))
        sink.retract(resume.stale)
    if resume.not_in_input:
        log(f"{resume.not_in_input} committed shard(s) are no longer in the input: kept")
    return resume


def close_output(plan: Plan, run_id: str, resume: ResumePlan, index: RunIndex | None, outcome: Outcome,
                 seconds: float, stopped_by: str | None, log: Callable[[str], None]) -> dict[str, Any]:
    """The driver's work after encoding: this run's file, the summary (from the run files)."""
    sink = plan.sink
    records = [CommitRecord.from_dict(r) for r in outcome.encoded]
    clips = sum(r.rows for r in records)
    if index is not None:
        try:
            sink.finish_run(index, records, resume.tokens)
        except Exception as err:  # noqa: BLE001 - the next run reads this run's commit records instead
            outcome.write_failures.append(f"{sink.layout.url_of(sink.layout.run_index(index.file_name))}: "
                                          f"{describe(err)}")
    run = RunRecord(run_id, seconds=round(seconds, 3), shards_encoded=len(records), shards_skipped=resume.skipped,
                    clips=clips, clips_per_second=round(clips / seconds, 3) if seconds else 0.0,
                    given_up=outcome.given_up, stopped_by=stopped_by, abandoned=outcome.abandoned,
                    write_failures=outcome.write_failures, stale=resume.stale)
    final = sink.after_run(resume.before, index, resume.stale)
    sink.adopt(final)  # a stale shard's earlier run is read once, then written down
    summary = build_summary(sink.layout, plan.names, run, records, final)
    try:
        sink.write_summary(summary)
    except Exception as err:  # noqa: BLE001 - the summary is printed anyway; the exit status must survive
        outcome.write_failures.append(f"{sink.layout.url_of(sink.layout.summary)}: {describe(err)}")
        summary["this_run"]["write_failures"] = outcome.write_failures
        log(f"warning: could not write {sink.layout.url_of(sink.layout.summary)}: {describe(err)}")
    log(format_summary(summary))
    if stopped_by:
        shards = summary["shards"]
        log(f"stopped by {stopped_by}: {shards['committed']} of {shards['total']} shards committed "
            f"({len(records)} in this run"
            + (f", {len(outcome.abandoned)} abandoned mid-shard" if outcome.abandoned else "")
            + f"), {shards['total'] - shards['committed']} not; re-run the same command to encode the rest")
    return summary


def _wait_for_actors(actors: list, stop: StopRequest) -> list[dict] | None:
    """The actors' identities once their models are loaded; None if a signal came first."""
    pending = [actor.identity.remote() for actor in actors]
    while True:
        ready, _ = ray.wait(pending, num_returns=len(pending), timeout=1.0)
        if len(ready) == len(pending):
            try:
                identities = ray.get(pending)
            except RayActorError as err:
                raise JobError(f"the encoder actors could not start: {describe(err)}") from None
            failed = [identity["error"] for identity in identities if "error" in identity]
            if failed:
                raise JobError(failed[0])
            return identities
        if stop.requested.is_set():
            return None


def _refuse_scattered_output(plan: Plan) -> None:
    """A local --output on several nodes would leave each node's shards on its own disk."""
    if not is_local(plan.layout.fs) or plan.job.where.shared_output:
        return
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    joining = plan.gpus_per_actor and not ray.cluster_resources().get("GPU")  # actors wait for GPU nodes to join
    if len(nodes) > 1 or joining:
        where = f"the cluster has {len(nodes)} nodes" if len(nodes) > 1 else "the encoders will run on GPU nodes " \
                                                                              "that have yet to join"
        raise ConfigError(f"--output: {plan.layout.url} is a local path, but {where}: each node would write its "
                          "shards to its own disk. Use object storage (s3://...), or pass --shared-output if this "
                          "path is shared storage mounted at the same place on every node (NFS, Lustre, ...)")


def _check_settings(plan: Plan, settings: dict[str, Any] | None = None) -> str:
    """The output's identity (settings and model config; weights once an actor has loaded them):
    "new" or "resumes", else ConfigError with the words every caller shows."""
    try:
        return plan.sink.check(plan.output_settings if settings is None else settings, plan.model.to_dict())
    except OutputConflict as err:
        raise ConfigError(str(err)) from None


def check_identity_before_ray(plan: Plan) -> str:
    """The same check before Ray is up: ``--dtype auto`` is resolved from the cluster's devices, so
    it is left out of the comparison then (the run compares it once placed)."""
    settings = plan.job.output_settings()
    if plan.job.latents.dtype == "auto":
        settings.pop("dtype")
    return _check_settings(plan, settings)


def _start_actors(plan: Plan, run_id: str, count: int) -> list:
    remote = ray.remote(concurrency_groups=CONCURRENCY_GROUPS)(EncoderActor)
    return [remote.options(name=f"encoder-{run_id}-{i}", num_gpus=plan.gpus_per_actor, num_cpus=ENCODER_CPUS, max_restarts=-1,
                           max_task_retries=0).remote(
        plan.job, plan.read_config, compute_dtype=plan.compute_dtype, decode_workers=plan.decode_workers,
        fingerprint=plan.fingerprint, run_id=run_id) for i in range(count)]
