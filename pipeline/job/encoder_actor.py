"""The Ray actor that owns one WF-VAE on one GPU (or CPU) and encodes shards with it.

The driver imports this module for the actor's class only: torch, the model and the encoding code
are imported by the actor itself, so that the driver starts without them.
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING, Any

import ray

from ..reading.records import describe

if TYPE_CHECKING:
    from ..reading import ReadConfig
    from .config import JobConfig
    from .decode_capacity import DecodeWorkers

# Shard calls an actor takes at once: while one is published, the next encodes and the one after it
# is open, so its decoding starts as soon as the one encoding has handed out its last sample.
SHARDS_IN_FLIGHT = 3
CONCURRENCY_GROUPS = {"progress": 1, "shards": SHARDS_IN_FLIGHT}


def resolve_dtype(name: str, on_gpu: bool) -> str:
    """``auto`` is bfloat16 on GPUs (fast, and WF-VAE's latents stay within 1e-2) and float32 on CPU."""
    return ("bfloat16" if on_gpu else "float32") if name == "auto" else name


def _piece_frames(job: JobConfig, temporal_compression: int) -> int | None:
    """Frames per piece of a whole-video clip (which streams through the Causal Cache); None for clips."""
    return (job.run.chunk_frames or 8 * temporal_compression) if job.read.whole_videos else None


class EncoderActor:
    """Loads the model once; ``encode_shard`` encodes one shard at a time (further calls decode ahead
    and wait for the encoder), ``progress`` reports on the shard being encoded.

    Start it with ``ray.remote(concurrency_groups=CONCURRENCY_GROUPS)``. Its decode workers are
    actors it owns: they die with it.
    """

    def __init__(self, job: JobConfig, read_config: ReadConfig, *, compute_dtype: str, decode_workers: DecodeWorkers,
                 fingerprint: str, run_id: str) -> None:
        from ..output.layout import OutputLayout
        from .dataflow import Dataflow
        from .decode_capacity import NoDecodeCPU

        # The decode workers' processes start first: they come up while this one imports torch and loads
        # the model. (Clips are cut for the model the driver checked the settings against.)
        layout = OutputLayout(job.where.output, job.where.storage_options)
        piece_frames = _piece_frames(job, read_config.temporal_compression)
        dataflow = Dataflow(read_config, layout.storage_options, piece_frames, decode_workers)
        try:
            dataflow.pool.resize()
        except NoDecodeCPU:
            pass  # the first shard reports it (the cluster may have grown by then)

        import torch

        from wfvae import WFVAE

        from ..dtypes import COMPUTE_DTYPES, LATENT_DTYPES
        from ..output.sink import latents_metadata
        from .canary import QualityCanary
        from .metrics import JobMetrics
        from .shard_encoder import ShardEncoder

        on_gpu = bool(ray.get_gpu_ids()) and torch.cuda.is_available()
        self.device = torch.device("cuda") if on_gpu else torch.device("cpu")
        if on_gpu:
            torch.backends.cudnn.benchmark = True  # clip shapes repeat: pick the fastest kernels once
        else:  # use exactly the CPUs Ray reserved for this actor
            torch.set_num_threads(max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1))))
        self.load_error: str | None = None
        try:
            self.vae = WFVAE.from_pretrained(job.where.model, device=self.device, dtype=COMPUTE_DTYPES[compute_dtype],
                                             storage_options=job.where.model_options)
        except Exception as err:  # noqa: BLE001 - reported by identity(): one line, not a crashed actor's dump
            self.load_error = f"could not load the model {job.where.model} on {socket.gethostname()}: {describe(err)}"
            dataflow.close()
            return
        tc = self.vae.temporal_compression
        if tc != read_config.temporal_compression:  # not the model the driver read: a dataflow for this one
            dataflow.close()
            dataflow = Dataflow(read_config, layout.storage_options, _piece_frames(job, tc), decode_workers)
        self.checksum = self.vae.weights_checksum()
        metadata = latents_metadata(job.where.model, self.vae, self.checksum, store=job.latents.store,
                                    latent_dtype=job.latents.latent_dtype, compute_dtype=compute_dtype,
                                    fingerprint=fingerprint)
        self.encoder = ShardEncoder(
            self.vae, dataflow, layout,
            batch_size=job.run.batch_size, chunk_frames=job.run.chunk_frames,
            latent_dtype=job.latents.latent_dtype, store_logvar=job.latents.store == "moments",
            file_metadata=metadata,
            canary=QualityCanary(self.vae, job.run.check_every, LATENT_DTYPES[job.latents.latent_dtype],
                                 job.run.chunk_frames // tc if job.run.chunk_frames else None)
            if job.run.check_every else None,
            metrics=JobMetrics(layout.url),
            record_extra={"run_id": run_id, "actor": {"pid": os.getpid(), "host": socket.gethostname(),
                                                      "device": str(self.device)}},
        )

    def identity(self) -> dict[str, Any]:
        """What the driver checks before handing out shards; ``error`` if the model did not load."""
        if self.load_error:
            return {"error": self.load_error}
        return {"weights_sha256": self.checksum, "config": self.vae.config.to_dict(), "pid": os.getpid(),
                "device": str(self.device), "dtype": str(self.vae.dtype).removeprefix("torch."),
                "temporal_compression": self.vae.temporal_compression}

    @ray.method(concurrency_group="shards")
    def encode_shard(self, url: str, attempt: int, order: int) -> dict[str, Any]:
        return self.encoder.encode_shard(url, attempt, order)

    @ray.method(concurrency_group="progress")
    def progress(self) -> dict[str, Any]:
        return {**self.encoder.progress(), "pid": os.getpid(), "node_id": ray.get_runtime_context().get_node_id()}
