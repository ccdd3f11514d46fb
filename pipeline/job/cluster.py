"""The job's Ray cluster: joining it, fitting the job to its resources, and starting the encoder actors."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ray
from ray.exceptions import RayActorError

from ..output.sink import OutputSink
from ..reading.records import describe
from .config import ConfigError, JobConfig
from .decode_capacity import ENCODER_CPUS, DecodeWorkers, NoDecodeCPU
from ..dtypes import resolve_dtype
from .encoder_actor import CONCURRENCY_GROUPS, ActorIdentity, EncoderActor
from .errors import JobError
from .local_ray import Watchdog
from .stopping import StopRequest

NAMESPACE = "wfvae-latents"
CONNECT_TIMEOUT = 3.0  # seconds for a Ray address to answer before it is called dead


def connect(address: str | None, log: Callable[[str], None]) -> None:
    """Join the given cluster, else the running one (or the one ``ray job submit`` set), else start locally
    (``local``: a private local runtime even when one runs on this machine).

    Ray itself retries an address that does not answer for minutes. An address the user asked
    for (``--ray-address`` or RAY_ADDRESS) that does not answer fails here within seconds; a
    cluster merely recorded in Ray's temp folder by a runtime that has since died is ignored,
    and a local runtime is started, as if no cluster had been found. A local runtime started here
    ends with this process, however it ends (local_ray.py).
    """
    if ray.is_initialized():
        return
    asked = address or os.environ.get("RAY_ADDRESS") or None
    if asked and not _answers(asked):
        raise JobError(f"nothing answers at the Ray address {asked!r} (from "
                       f"{'--ray-address' if address else 'RAY_ADDRESS'}) within {CONNECT_TIMEOUT:g} s: start "
                       "the cluster (ray start --head), fix the address, or leave it out to run on a local "
                       "Ray runtime")
    watchdog = Watchdog()
    try:
        recorded = None if asked else _recorded_cluster()
        if recorded and not _answers(recorded):
            log(f"Ray's record of a running cluster ({_record_file()}: {recorded}) is stale, nothing answers there "
                "(a runtime that crashed leaves it behind): starting a local Ray runtime instead")
            asked = "local"
        ray.init(address=asked, namespace=NAMESPACE, logging_level="warning")
    finally:
        watchdog.watch(_started_session())


def _started_session() -> str | None:
    """The session folder of the Ray runtime this process started (None: it joined one, or none started)."""
    try:
        node = ray._private.worker._global_node
        return node.get_session_dir_path() if node is not None and node.head else None
    except AttributeError:  # pragma: no cover - Ray moved it: its own clean-up only
        return None


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


@dataclass(frozen=True)
class Placement:
    """The job fitted to the cluster: encoder actors, their GPUs and decode workers, and the compute dtype."""

    num_actors: int
    gpus_per_actor: float
    decode_workers: DecodeWorkers
    compute_dtype: str

    @property
    def on_gpu(self) -> bool:
        return self.gpus_per_actor > 0


def place(job: JobConfig, output_is_local: bool, log: Callable[[str], None]) -> Placement:
    """Actors, decode workers and precision from the cluster's resources (needs a Ray connection)."""
    gpus = ray.cluster_resources().get("GPU", 0)
    gpus_per_actor = job.run.gpus_per_actor if job.run.gpus_per_actor is not None else (1.0 if gpus else 0.0)
    joining = bool(gpus_per_actor and not gpus)  # the actors wait for GPU nodes to join (autoscaling)
    if joining:
        log("no GPUs in the cluster yet: encoder actors wait for GPU nodes (autoscaling)")
    num_actors = job.run.num_actors or (max(1, int(gpus // gpus_per_actor)) if gpus_per_actor and gpus else 1)
    decode_workers = DecodeWorkers(job.run.decode_workers, num_actors, job.run.decode_start_seconds)
    if not joining:  # (GPU nodes that join bring CPUs too)
        try:
            decode_workers.now()
        except NoDecodeCPU as err:
            raise JobError(str(err)) from None
    if output_is_local and not job.where.shared_output:
        _refuse_scattered_output(job.where.output, joining)
    return Placement(num_actors, gpus_per_actor, decode_workers, resolve_dtype(job.latents.dtype, gpus_per_actor > 0))


def _refuse_scattered_output(output: str, joining: bool) -> None:
    """A local --output on several nodes would leave each node's shards on its own disk."""
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    if len(nodes) > 1 or joining:
        where = f"the cluster has {len(nodes)} nodes" if len(nodes) > 1 else "the encoders will run on GPU nodes " \
                                                                              "that have yet to join"
        raise ConfigError(f"--output: {output} is a local path, but {where}: each node would write its shards to its "
                          "own disk. Use object storage (s3://...), or pass --shared-output if this path is shared "
                          "storage mounted at the same place on every node (NFS, Lustre, ...)")


def start_actors(job: JobConfig, read_config, sink: OutputSink, placement: Placement, fingerprint: str,
                 run_id: str, count: int) -> list:
    remote = ray.remote(concurrency_groups=CONCURRENCY_GROUPS)(EncoderActor)
    return [remote.options(name=f"encoder-{run_id}-{i}", num_gpus=placement.gpus_per_actor, num_cpus=ENCODER_CPUS,
                           max_restarts=-1, max_task_retries=0).remote(
        job, read_config, sink, compute_dtype=placement.compute_dtype, decode_workers=placement.decode_workers,
        fingerprint=fingerprint, run_id=run_id) for i in range(count)]


def wait_for_actors(actors: list, stop: StopRequest) -> list[ActorIdentity] | None:
    """The actors' identities once their models are loaded; None if a signal came first."""
    pending = [actor.identity.remote() for actor in actors]
    while True:
        ready, _ = ray.wait(pending, num_returns=len(pending), timeout=1.0)
        if len(ready) == len(pending):
            try:
                identities = ray.get(pending)
            except RayActorError as err:
                raise JobError(f"the encoder actors could not start: {describe(err)}") from None
            failed = [identity.error for identity in identities if identity.error]
            if failed:
                raise JobError(failed[0])
            return identities
        if stop.requested.is_set():
            return None

