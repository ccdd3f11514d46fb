"""The job driver: list shards, skip committed ones, hand the rest to encoder actors.

Ray restarts an encoder actor that dies; the shard it held goes back in the queue and
is given up (recorded in ``_given_up/``) after ``max_shard_attempts`` failures. There
is no other scheduling: each idle actor takes the next shard.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any

import ray
from ray.exceptions import ActorDiedError, GetTimeoutError, RayActorError, RayTaskError

from wfvae.config import WFVAEConfig
from wfvae.loading import resolve_source

from ..output.layout import OutputLayout, remove_partial_files, shard_name
from ..output.manifest import OutputConflict, check_or_create, clear, describe_differences, make_manifest
from ..output.storage import read_json, write_json
from ..reading import ReadConfig, list_shards
from ..reading.records import describe
from .config import ConfigError, JobConfig, check_against_model
from .decode_workers import default_decode_workers
from .encoder_actor import CONCURRENCY_GROUPS, SHARDS_IN_FLIGHT, EncoderActor, resolve_dtype
from .summary import build_summary, format_summary, write_summary

NAMESPACE = "wfvae-latents"


class JobError(RuntimeError):
    """The job cannot run (actors failed to start); the message says why."""


def _first_line(err: BaseException) -> str:
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    return lines[-1][:500] if lines else type(err).__name__


def make_read_config(job: JobConfig, temporal_compression: int) -> ReadConfig:
    return ReadConfig(
        num_frames=job.num_frames, temporal_compression=temporal_compression, fps=job.fps, clips=job.clips,
        max_frames=job.max_frames, short_videos=job.short_videos, resolution=job.resolution,
        buckets=job.buckets, video_extensions=job.video_extensions, caption_key=job.caption_key,
    )


def connect(address: str | None) -> None:
    """Join the given cluster, else the running one (or the one ``ray job submit`` set), else start locally."""
    if not ray.is_initialized():
        ray.init(address=address, namespace=NAMESPACE, logging_level="warning")


def model_config(model: str) -> WFVAEConfig:
    """The model's config.json alone: enough to check settings before any actor loads weights."""
    try:
        config_path, _ = resolve_source(model)
        return WFVAEConfig.from_json(config_path)
    except (FileNotFoundError, ValueError) as err:
        raise ConfigError(f"--model: {err}") from None


class Plan:
    """What this run will do, decided before any actor starts."""

    def __init__(self, job: JobConfig, log: Callable[[str], None]) -> None:
        self.job = job
        self.layout = OutputLayout(job.output, job.storage_options)
        try:
            urls = list_shards(job.input, job.storage_options)
        except (ValueError, OSError) as err:
            raise ConfigError(f"--input: {err}") from None
        if not urls:
            raise ConfigError(f"--input: {job.input!r} matches no shards")
        self.urls = urls
        self.names = [shard_name(u) for u in urls]
        duplicates = sorted(n for n in set(self.names) if self.names.count(n) > 1)
        if duplicates:
            raise ConfigError(f"--input: several shards share the file name(s) {duplicates[:5]}; outputs are named "
                              "after shard file names, so run one job (with its own --output) per folder")
        self.model = model_config(job.model)
        check_against_model(job, self.model.temporal_compression)
        self.read_config = make_read_config(job, self.model.temporal_compression)

    def place(self, log: Callable[[str], None]) -> None:
        """Actors, decode workers and precision, from the cluster's resources (needs a Ray connection)."""
        job = self.job
        gpus = ray.cluster_resources().get("GPU", 0)
        self.gpus_per_actor = job.gpus_per_actor if job.gpus_per_actor is not None else (1.0 if gpus else 0.0)
        if self.gpus_per_actor and not gpus:
            log("no GPUs in the cluster yet: encoder actors wait for GPU nodes (autoscaling)")
        default_actors = max(1, int(gpus // self.gpus_per_actor)) if self.gpus_per_actor and gpus else 1
        self.num_actors = job.num_actors or default_actors
        self.decode_workers = job.decode_workers or default_decode_workers(
            [node["Resources"] for node in ray.nodes() if node.get("Alive")], self.gpus_per_actor, self.num_actors)
        self.compute_dtype = resolve_dtype(job.dtype, on_gpu=self.gpus_per_actor > 0)
        self.output_settings = {**job.output_settings(), "dtype": self.compute_dtype}
        self.fingerprint = hashlib.sha256(json.dumps(self.output_settings, sort_keys=True).encode()).hexdigest()[:16]


def run_job(job: JobConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    plan = Plan(job, log)  # every setting is checked before Ray starts
    connect(job.ray_address)
    plan.place(log)
    layout = plan.layout
    run_id = uuid.uuid4().hex[:8]
    started = time.perf_counter()

    if job.overwrite:
        clear(layout)
        log(f"--overwrite: removed the previous contents of {layout.url}")
    else:
        _check_settings(plan)  # a different job's output is refused before anything loads
    remove_partial_files(layout)
    committed = set(layout.committed_shards())
    todo = [url for url, name in zip(plan.urls, plan.names) if name not in committed]
    log(f"{len(plan.urls)} shards, {len(plan.urls) - len(todo)} already committed, {len(todo)} to encode "
        f"(run {run_id})")

    encoded: list[dict] = []
    if todo:
        actors = _start_actors(plan, run_id, min(plan.num_actors, len(todo)))
        try:
            identities = ray.get([actor.identity.remote() for actor in actors])
        except RayActorError as err:
            raise JobError(f"the encoder actors could not start: {_first_line(err)}") from None
        model = {"source": job.model, "weights_sha256": identities[0]["weights_sha256"],
                 "config": identities[0]["config"], "temporal_compression": identities[0]["temporal_compression"]}
        manifest = make_manifest(job.public_dict(), plan.output_settings, plan.fingerprint, model)
        try:
            state = check_or_create(layout, manifest, overwrite=False)
        except OutputConflict as err:
            raise ConfigError(str(err)) from None
        log(f"output {layout.url}: {state}; {len(actors)} encoder actor(s) on "
            f"{identities[0]['device']} ({identities[0]['dtype']}), {plan.decode_workers} decode worker(s) each")
        try:
            encoded = _dispatch(plan, actors, todo, log, started)
        finally:
            for actor in actors:
                ray.kill(actor)

    seconds = time.perf_counter() - started
    clips = sum(r["rows"] for r in encoded)
    summary = build_summary(layout, plan.names, {
        "run_id": run_id, "seconds": round(seconds, 3), "shards_encoded": len(encoded),
        "shards_skipped": len(plan.urls) - len(todo), "clips": clips,
        "clips_per_second": round(clips / seconds, 3) if seconds else 0.0})
    write_summary(layout, summary)
    log(format_summary(summary))
    return summary


def _check_settings(plan: Plan) -> None:
    layout = plan.layout
    if not layout.exists():
        return
    existing = read_json(layout.fs, layout.job_manifest)
    probe = {"fingerprint": plan.fingerprint, "output_settings": plan.output_settings,
             "model": existing.get("model", {})}  # weights are compared once an actor has loaded them
    differences = describe_differences(existing, probe)
    if differences:
        raise ConfigError(f"{layout.url} holds the output of a different job ({'; '.join(differences)}). Re-run "
                          "with the original settings to resume it, use another --output, or pass --overwrite "
                          "to delete it and start over")


def _start_actors(plan: Plan, run_id: str, count: int) -> list:
    remote = ray.remote(concurrency_groups=CONCURRENCY_GROUPS)(EncoderActor)
    return [remote.options(name=f"encoder-{run_id}-{i}", num_gpus=plan.gpus_per_actor, num_cpus=1, max_restarts=-1,
                           max_task_retries=0).remote(
        plan.job, plan.read_config, compute_dtype=plan.compute_dtype, decode_workers=plan.decode_workers,
        fingerprint=plan.fingerprint, run_id=run_id) for i in range(count)]


def _dispatch(plan: Plan, actors: list, todo: list[str], log: Callable[[str], None],
              started: float) -> list[dict]:
    """Hands shards to idle actors until every shard is committed or given up.

    After an actor fails, it gets no shard until a health probe returns: Ray restarts it
    (reloading the model takes a while) and calls made meanwhile would fail without
    running, which must not count as attempts.
    """
    job, layout = plan.job, plan.layout
    queue = deque(todo)
    attempts: dict[str, int] = defaultdict(int)
    running: dict[Any, tuple[int, str]] = {}  # shard calls in flight
    probes: dict[Any, int] = {}  # health probes of actors being restarted
    idle = [i for _ in range(SHARDS_IN_FLIGHT) for i in range(len(actors))][::-1]  # shard slots
    encoded: list[dict] = []
    given_up = 0
    last_report = time.perf_counter()
    while queue or running:
        while idle and queue:
            index, url = idle.pop(), queue.popleft()
            attempts[url] += 1
            running[actors[index].encode_shard.remote(url, attempts[url])] = (index, url)
        if not running and not probes:
            raise JobError("every encoder actor has died and none can be restarted")
        done, _ = ray.wait([*running, *probes], num_returns=1, timeout=min(job.progress_seconds, 5.0))
        for ref in done:
            if ref in probes:
                index = probes.pop(ref)
                try:
                    ray.get(ref)
                    busy = sum(1 for i, _ in running.values() if i == index) + idle.count(index)
                    idle.extend([index] * (SHARDS_IN_FLIGHT - busy))  # its shard slots, back
                except ActorDiedError as err:
                    log(f"encoder actor {index} is gone for good: {_first_line(err)}")
                except RayActorError:
                    time.sleep(0.5)  # still restarting
                    probes[actors[index].identity.remote()] = index
                continue
            index, url = running.pop(ref)
            try:
                encoded.append(ray.get(ref))
                idle.append(index)
                continue
            except RayActorError as err:
                reason = f"encoder actor died ({type(err).__name__}): {_first_line(err)}"
                idle[:] = [i for i in idle if i != index]  # no shard for it until one probe says it is back
                if index not in probes.values():
                    probes[actors[index].identity.remote()] = index
            except RayTaskError as err:
                reason = f"{describe(err.cause) if getattr(err, 'cause', None) else describe(err)}"
                idle.append(index)
            if attempts[url] < job.max_shard_attempts:
                log(f"shard {shard_name(url)} failed (attempt {attempts[url]}/{job.max_shard_attempts}): {reason}; "
                    "re-queued")
                queue.append(url)
            else:
                given_up += 1
                log(f"shard {shard_name(url)} given up after {attempts[url]} attempts: {reason}")
                write_json(layout.fs, layout.given_up(shard_name(url)),
                           {"url": url, "attempts": attempts[url], "last_error": reason, "at": time.time()})
        if time.perf_counter() - last_report >= job.progress_seconds:
            log(_progress_line(plan, actors, running, encoded, given_up, len(todo), started))
            last_report = time.perf_counter()
    return encoded


def _progress_line(plan: Plan, actors: list, running: dict, encoded: list[dict], given_up: int, total: int,
                   started: float) -> str:
    elapsed = time.perf_counter() - started
    partial = 0
    for index in {index for index, _ in running.values()}:
        try:
            partial += ray.get(actors[index].progress.remote(), timeout=1.0).get("clips", 0)
        except (GetTimeoutError, RayActorError):
            pass
    clips = sum(r["rows"] for r in encoded) + partial
    errors = sum(r["errors"] for r in encoded)
    done = len(encoded)
    eta = f"{elapsed / done * (total - done - given_up):.0f} s" if done else "unknown"
    return (f"[{elapsed:7.1f} s] shards {done}/{total} done, {len(running)} running, {given_up} given up; "
            f"{clips} clips ({clips / elapsed:.2f} clips/s), {errors} errors; ETA {eta}")
