"""The Ray actor that owns one WF-VAE on one GPU (or CPU) and encodes shards with it.

The driver imports this module for the actor's class only: torch, the model and the encoding code
are imported by the actor itself, so that the driver starts without them.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

import ray

from ..output.manifest import ModelIdentity
from ..output.records import ActorInfo
from ..reading.records import describe
from ..text.identity import TextEncoderIdentity

if TYPE_CHECKING:
    from ..output.sink import OutputSink
    from ..reading import ReadConfig
    from .config import JobConfig
    from .decode_capacity import DecodeWorkers

# Shard calls an actor takes at once: while one is published, the next encodes and the one after it
# is open, so its decoding starts as soon as the one encoding has handed out its last sample.
SHARDS_IN_FLIGHT = 3
CONCURRENCY_GROUPS = {"progress": 1, "shards": SHARDS_IN_FLIGHT}
OPENED = "opened"  # what a shard call yields first: the driver may now send this encoder its next shard


@dataclass(frozen=True)
class ActorIdentity:
    """What the driver learns from an actor once its model is loaded (``error``: why it was not)."""

    model: ModelIdentity | None = None
    pid: int = 0
    device: str = ""
    dtype: str = ""
    error: str | None = None
    text: TextEncoderIdentity | None = None  # with --text-encoder


@dataclass(frozen=True)
class ActorProgress:
    """Where an actor runs and the shard it is encoding (its samples, clips and errors so far)."""

    pid: int
    node_id: str
    shard: str | None = None
    samples: int = 0
    clips: int = 0
    errors: int = 0
    workers_waiting_for_cpu: int = 0  # decode workers holding samples, not up (the encoder waits for them)


def piece_frames(job: JobConfig, temporal_compression: int) -> int | None:
    """Frames per piece of a whole-video clip (which streams through the Causal Cache); None for clips."""
    return (job.run.chunk_frames or 8 * temporal_compression) if job.read.whole_videos else None


class EncoderActor:
    """Loads the model once; ``encode_shard`` encodes one shard at a time (further calls decode ahead
    and wait for the encoder), ``progress`` reports on the shard being encoded.

    Start it with ``ray.remote(concurrency_groups=CONCURRENCY_GROUPS)``. Its decode workers are
    actors it owns: they die with it.
    """

    def __init__(self, job: JobConfig, read_config: ReadConfig, sink: OutputSink, *, compute_dtype: str,
                 decode_workers: DecodeWorkers, fingerprint: str, run_id: str) -> None:
        from .dataflow import Dataflow
        from .decode_capacity import NoDecodeCPU

        # The decode workers' processes start first: they come up while this one imports torch and loads
        # the model. (Clips are cut for the model the driver checked the settings against.)
        options = sink.layout.storage_options
        dataflow = Dataflow(read_config, options, piece_frames(job, read_config.temporal_compression), decode_workers)
        try:
            dataflow.pool.resize()
        except NoDecodeCPU:
            pass  # the first shard reports it (the cluster may have grown by then)

        import torch

        from wfvae import WFVAE

        from ..dtypes import COMPUTE_DTYPES, LATENT_DTYPES, resolve_dtype
        from ..encode.batching import images_per_batch
        from ..encode.canary import QualityCanary
        from ..encode.shard_loop import EncodeSettings, ShardLoop
        from ..output.sink import latents_metadata
        from .metrics import JobMetrics
        from .shard_encoder import ShardEncoder

        on_gpu = bool(ray.get_gpu_ids()) and torch.cuda.is_available()
        self.device = torch.device("cuda") if on_gpu else torch.device("cpu")
        if on_gpu:
            torch.backends.cudnn.benchmark = True  # clip shapes repeat: pick the fastest kernels once
        else:  # use exactly the CPUs Ray reserved for this actor
            torch.set_num_threads(max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1))))
        self.load_error: str | None = None
        self.text = None
        try:
            self.vae = WFVAE.from_pretrained(job.where.model, device=self.device, dtype=COMPUTE_DTYPES[compute_dtype],
                                             storage_options=job.where.model_options)
            if job.text.text_encoder is not None:  # transformers is imported only then
                from ..text.loading import load_text_encoder

                self.text = load_text_encoder(job.text.text_encoder, max_text_tokens=job.text.max_text_tokens,
                                              dtype=resolve_dtype(job.text.text_dtype, on_gpu), device=self.device,
                                              storage_options=job.where.model_options)
        except Exception as err:  # noqa: BLE001 - reported by identity(): one line, not a crashed actor's dump
            which = "text encoder" if hasattr(self, "vae") else "model"
            source = job.text.text_encoder if which == "text encoder" else job.where.model
            self.load_error = f"could not load the {which} {source} on {socket.gethostname()}: {describe(err)}"
            dataflow.close()
            return
        tc = self.vae.temporal_compression
        pieces = piece_frames(job, tc)
        if tc != read_config.temporal_compression:  # not the model the driver read: a dataflow for this one
            dataflow.close()
            dataflow = Dataflow(read_config, options, pieces, decode_workers)
        self.model = ModelIdentity.of(self.vae, job.where.model)
        latents = job.latents
        images = job.run.image_batch_size or images_per_batch(job.run.batch_size, job.read.num_frames, tc)
        settings = EncodeSettings(job.run.batch_size, latents.latent_dtype, latents.store == "moments",
                                  job.run.chunk_frames, pieces, images)
        canary = QualityCanary(self.vae, job.run.check_every, LATENT_DTYPES[latents.latent_dtype],
                               job.run.chunk_frames // tc if job.run.chunk_frames else None) \
            if job.run.check_every else None
        metadata = latents_metadata(self.vae, self.model, store=latents.store, latent_dtype=latents.latent_dtype,
                                    compute_dtype=compute_dtype, fingerprint=fingerprint)
        self.encoder = ShardEncoder(ShardLoop(self.vae, settings, canary, self.text), dataflow, sink, metadata,
                                    run_id=run_id,
                                    actor=ActorInfo(os.getpid(), socket.gethostname(), str(self.device)),
                                    metrics=JobMetrics(sink.url))

    def identity(self) -> ActorIdentity:
        """What the driver checks before handing out shards; ``error`` if the model did not load."""
        if self.load_error:
            return ActorIdentity(error=self.load_error)
        return ActorIdentity(self.model, os.getpid(), str(self.device), str(self.vae.dtype).removeprefix("torch."),
                             text=self.text.identity if self.text else None)

    @ray.method(concurrency_group="shards", num_returns="streaming")
    def encode_shard(self, url: str, attempt: int):
        """Yields ``OPENED`` once the shard is queued for decoding, then its CommitRecord."""
        yield from self.encoder.encode_shard(url, attempt)

    @ray.method(concurrency_group="progress")
    def progress(self) -> ActorProgress:
        shard, waiting = self.encoder.progress()
        here = os.getpid(), ray.get_runtime_context().get_node_id()
        if shard is None:
            return ActorProgress(*here, workers_waiting_for_cpu=waiting)
        return ActorProgress(*here, shard.shard, shard.samples, shard.clips, shard.errors, waiting)
