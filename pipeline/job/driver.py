"""The job driver: the story of one run, from the settings to the summary.

Everything that can be checked is checked before anything starts: the settings, the shards, the
model's config (``Plan``), then the output (its lease, which also proves it writable, and its
identity). An output with nothing left is answered without Ray. Otherwise the encoder actors start,
and once they have loaded the model the output is begun and the shards are handed out (``dispatch``).
The run ends with the output's summary, after a signal too.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import ray

from ..output.manifest import Manifest
from ..output.sink import OutputBusy, OutputConflict, OutputSink, OutputUnwritable
from ..output.summary import OutputSummary
from .balance import run_balance
from .cluster import NAMESPACE, Placement, connect, place, start_actors, wait_for_actors
from .config import ConfigError, JobConfig
from .dispatch import dispatch
from .errors import JobError
from .plan import Plan
from .stopping import StopRequest
from .summary import format_summary, format_stopped

__all__ = ["NAMESPACE", "JobError", "run_job"]


def run_job(job: JobConfig, log: Callable[[str], None] = print, stop: StopRequest | None = None) -> OutputSummary:
    """Runs the job; returns the output's summary. ConfigError: a setting is wrong (nothing was started);
    JobError: the job could not run. With ``stop`` (installed by the caller for SIGTERM/SIGINT) a signal
    ends the job early, and the summary says so (``this_run.stopped_by``)."""
    stop = stop or StopRequest()
    started = time.perf_counter()
    plan = Plan(job)
    sink = OutputSink(job.where.output, job.where.storage_options)
    try:
        with sink.hold(plan.run_id, job.run.lease_seconds, wait=job.where.wait, stop=stop.requested, log=log,
                       input=job.where.input):
            left = sink.start(plan.urls, plan.names, plan.identity(), overwrite=job.where.overwrite,
                              missing=plan.missing)
            for line in plan.notes:
                log(line)
            log(f"{len(plan.urls)} shards, {len(left.committed)} already committed, {len(left.todo)} to encode "
                f"(run {plan.run_id})" + _about(plan, left, job.where.overwrite))
            abandoned: list[str] = []
            if not left.todo:
                log(f"nothing left to encode in {sink.url}: answered from the output, without starting Ray")
            elif not stop.requested.is_set():
                connect(job.run.ray_address, log)
                stop.install()  # again: ray.init replaced the SIGTERM handler
                placement = place(job, sink.local, log)
                if not job.where.overwrite:  # again, with the precisions the cluster's devices resolve
                    sink.check(plan.identity(placement.on_gpu))
                abandoned = encode(plan, placement, sink, left.todo, log, started, stop)
            summary = sink.finish(seconds=time.perf_counter() - started, stopped_by=stop.name, abandoned=abandoned,
                                  balance=run_balance(sink.records))
    except (OutputConflict, OutputUnwritable) as err:
        raise ConfigError(str(err)) from None
    except OutputBusy as err:
        raise JobError(str(err)) from None
    log(format_summary(summary))
    if stop.name:
        log(format_stopped(summary))
    return summary


def encode(plan: Plan, placement: Placement, sink: OutputSink, todo: list[str], log: Callable[[str], None],
           started: float, stop: StopRequest) -> list[str]:
    """Starts the encoder actors, begins the output once they hold the model, and hands them the shards.
    Returns the shards a signal abandoned mid-way."""
    job = plan.job
    identity = plan.identity(placement.on_gpu)
    actors = start_actors(job, plan.read_config, sink, placement, identity.fingerprint, plan.run_id,
                          min(placement.num_actors, len(todo)))
    try:
        identities = wait_for_actors(actors, stop)
        if identities is None:
            return []
        loaded = identity.with_encoders(identities[0].model, identities[0].text)
        opened = sink.begin(Manifest(loaded, job.public_dict()))
        log(f"output {sink.url}: {opened}; {len(actors)} encoder actor(s) on {identities[0].device} "
            f"({identities[0].dtype}), {placement.decode_workers} decode worker(s) each")
        return dispatch(actors, todo, sink, job.run, log, started, stop)
    finally:
        for actor in actors:
            ray.kill(actor)


def _about(plan: Plan, left, overwrite: bool) -> str:
    notes = []
    if plan.missing:
        notes.append(f"; {len(plan.missing)} shard(s) the input names do not exist, the run goes on without them "
                     f"(--allow-missing-shards): {', '.join(plan.missing[:5])}" + (" ..." if len(plan.missing) > 5
                                                                                    else ""))
    if overwrite:
        return "".join(notes) + "; --overwrite: the output is cleared once the encoders have loaded the model"
    if left.stale:
        notes.append(f"; {len(left.stale)} committed shard(s) changed at their source since they were encoded (size, "
                     f"ETag or mtime): their latents are withdrawn and encoded again: {', '.join(left.stale[:5])}"
                     + (" ..." if len(left.stale) > 5 else ""))
    if left.not_in_input:
        notes.append(f"; {left.not_in_input} committed shard(s) are no longer in the input: kept")
    if left.records_read:
        notes.append(f"; {left.records_read} commit record(s) read (a run was killed after its last update)")
    return "".join(notes)
