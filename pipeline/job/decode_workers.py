"""Decode workers: long-lived Ray actors of one CPU each, owned by one encoder, placed where the cluster has CPUs.

A worker is handed *calls*: runs of consecutive samples of one shard (several when samples decode
quickly, so Ray's cost per call stays small), and streams their clips back in *parcels* of a few MiB.
Ray runs an actor's calls one after another in the order they were submitted: that order is what
the dataflow's deadlock argument rests on.

Why actors rather than plain Ray tasks: a worker whose encoder is behind is held back (back-pressure)
and keeps its CPU meanwhile. As an actor of its own encoder it keeps one of *that* encoder's CPUs;
a pool of tasks shared by all encoders could be filled with one encoder's held-back work while
another encoder's oldest sample waits for a CPU.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import ray
from ray.exceptions import ObjectLostError, RayActorError

from ..reading import ClipPiece, ErrorRecord, ReadConfig, Sample, SampleError, decode_clips

PARCEL_BYTES = 4 * 2**20  # decoded pixels per object handed back (several small clips travel together)
BYTES_AHEAD = 48 * 2**20  # decoded pixels one call may hold ready ahead of the encoder
CALL_SECONDS = 0.05  # worker time a call aims at: Ray's cost per call stays a few percent of it
MAX_CALL_SAMPLES = 16  # at most this many samples, and this many compressed bytes, per call
MAX_CALL_BYTES = 16 * 2**20


@dataclass
class Part:
    """Consecutive pieces of the ``index``-th sample of a call (a warning about the sample travels among them,
    where the reader gave it); ``end``: the sample is done (failed if ``error``)."""

    index: int
    pieces: list[ClipPiece | ErrorRecord] = field(default_factory=list)
    decode_seconds: float = 0.0
    end: bool = False
    error: ErrorRecord | None = None


class DecodeWorker:
    """The worker process."""

    def where(self) -> str:
        """Its node's id: answered once the worker is placed and its process is up."""
        return ray.get_runtime_context().get_node_id()

    def decode(self, samples: list[Sample], config: ReadConfig, piece_frames: int | None, skip: int,
               parcel_bytes: int, each_sample: bool) -> Iterator[list[Part]]:
        """The samples' pieces, the first sample's after its first ``skip``. A sample that fails ends with its
        error and the next one starts. ``each_sample``: a parcel at every sample's end (after a crash)."""
        parts: list[Part] = []
        size = 0
        for index, sample in enumerate(samples):
            part = Part(index)
            parts.append(part)
            skipping = skip if index == 0 else 0
            stream = decode_clips(sample, config, piece_frames)
            began = time.perf_counter()
            while True:
                try:
                    piece = next(stream)
                except StopIteration:
                    break
                except SampleError as failed:
                    part.error = failed.record
                    break
                if skipping:
                    skipping -= 1
                    continue
                if size >= parcel_bytes:  # full: sent before this piece, so a sample's end never travels alone
                    part.decode_seconds += time.perf_counter() - began
                    yield parts
                    part = Part(index)
                    parts, size = [part], 0
                    began = time.perf_counter()
                part.pieces.append(piece)
                size += 0 if isinstance(piece, ErrorRecord) else piece.frames.nbytes
            part.decode_seconds += time.perf_counter() - began
            part.end = True
            if each_sample:
                yield parts
                parts, size = [], 0
        if parts:
            yield parts


# max_restarts=0: a dead worker is replaced by its pool, which knows the calls it held.
WORKER = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(DecodeWorker)


def parcel_plan(config: ReadConfig, piece_frames: int | None) -> tuple[int, int]:
    """(bytes per parcel, parcels a call may hold ahead of the encoder) for this job's clip size."""
    sizes = [config.resolution] if config.resolution else list(config.buckets or ())
    height, width = max(sizes, key=lambda s: s[0] * s[1])
    piece = (piece_frames or config.num_frames) * height * width * 3
    parcel = max(PARCEL_BYTES, piece)
    return parcel, max(2, BYTES_AHEAD // parcel)


def worker_died(err: BaseException) -> bool:
    """An error that means the worker process (or its node, with the parcels it held) is gone."""
    return isinstance(err, (RayActorError, ObjectLostError))
