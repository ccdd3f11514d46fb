"""Decode worker processes: long-lived Ray actors, one CPU each, beside their encoder.

A worker decodes one sample at a time and streams its clips back in *parcels* (several
clips per object, so a sample of small clips costs one object, while a whole-video clip
still arrives in bounded pieces). A crash inside a video library kills only the worker's
process: the encoder sees an actor error for that one sample, starts a fresh worker in the
same slot and decodes the sample again there, skipping the pieces it already has. Only a
crash that repeats in a fresh worker is the sample's fault (a ``DecoderCrashed`` error row):
a worker can also die for reasons of its own (its node went away, the OOM killer).

A ``DecodePool`` holds a fixed number of *slots*, each a worker actor. A slot belongs to one
sample from the moment the sample is handed to it until its worker has finished with it, and a
worker restarted for that sample takes the same slot: a later sample can never hold the slot
an earlier one needs (see ``dataflow`` for why that makes the whole flow deadlock-free).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ..reading import ClipPiece, ReadConfig, Sample, SampleError, decode_clips
from ..reading.records import STAGE_DECODE, describe

# Decoded pixels per object handed back (several small clips travel together).
PARCEL_BYTES = 4 * 2**20
# Decoded pixels one worker may hold ready ahead of the encoder: bounds memory for long videos.
BYTES_AHEAD = 48 * 2**20

CRASH_MESSAGE = ("the worker process decoding this sample died twice, in two fresh workers (a crash inside the "
                 "video decoder, or it was killed)")


@dataclass
class Parcel:
    """Consecutive pieces of one sample, and the worker time spent producing them."""

    pieces: list[ClipPiece]
    decode_seconds: float


class DecodeWorker:
    """The worker process: decodes one sample per call, as a streaming generator of parcels."""

    def pid(self) -> int:
        return os.getpid()

    def decode(self, sample: Sample, config: ReadConfig, piece_frames: int | None, skip: int,
               parcel_bytes: int) -> Iterator[Parcel]:
        """The sample's pieces after the first ``skip``; pieces decoded before an error are sent before it."""
        stream = decode_clips(sample, config, piece_frames)
        pieces, size, busy, index = [], 0, 0.0, 0
        while True:
            began = time.perf_counter()
            try:
                piece = next(stream)
            except StopIteration:
                break
            except BaseException:
                busy += time.perf_counter() - began
                if pieces:
                    yield Parcel(pieces, busy)
                raise
            busy += time.perf_counter() - began
            index += 1
            if index <= skip:
                continue
            pieces.append(piece)
            size += piece.frames.nbytes
            if size >= parcel_bytes:
                yield Parcel(pieces, busy)
                pieces, size, busy = [], 0, 0.0
        yield Parcel(pieces, busy)  # the last one, maybe empty: it still reports the time spent


# max_restarts=0: a dead worker is replaced by the pool, which knows which sample it held.
_WORKER = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(DecodeWorker)


def parcel_plan(config: ReadConfig, piece_frames: int | None) -> tuple[int, int]:
    """(bytes per parcel, parcels a worker may hold ahead) for this job's clip size."""
    sizes = [config.resolution] if config.resolution else list(config.buckets or ())
    height, width = max(sizes, key=lambda s: s[0] * s[1])
    frames = piece_frames or config.num_frames
    piece = frames * height * width * 3
    parcel = max(PARCEL_BYTES, piece)
    return parcel, max(2, BYTES_AHEAD // parcel)


def default_decode_workers(nodes: list[dict[str, float]], gpus_per_actor: float, num_actors: int) -> int:
    """Decode workers per encoder actor: the CPUs of an encoder's node, less one per encoder actor
    placed there, shared among those actors; the smallest share over the nodes an encoder can use.

    GPU encoders fill each GPU node (``GPU // gpus_per_actor`` actors); CPU encoders are counted
    as spread over the nodes. Workers that a node cannot place are simply never given work.
    """
    shares = []
    for resources in nodes:
        cpus = int(resources.get("CPU", 0))
        if gpus_per_actor:
            here = int(resources.get("GPU", 0) // gpus_per_actor)
        else:
            here = -(-num_actors // max(1, len(nodes))) if cpus else 0
        if here >= 1:
            shares.append((cpus - here) // here)
    return max(1, min(shares)) if shares else 1


def failure(err: BaseException) -> tuple[str, str, str]:
    """(stage, error_type, message) for an error raised while fetching a decoded parcel."""
    cause = err.cause if isinstance(err, RayTaskError) and getattr(err, "cause", None) is not None else err
    if isinstance(cause, SampleError):
        return cause.stage, cause.error_type, cause.message
    return STAGE_DECODE, type(cause).__name__, describe(cause)


def worker_died(err: BaseException) -> bool:
    """An error that means the worker process is gone (not that the sample failed in it)."""
    return isinstance(err, RayActorError)


class _Slot:
    def __init__(self, index: int) -> None:
        self.index = index
        self.actor = None
        self.ready_ref = None  # the worker's pid, once its process is up
        self.pid: int | None = None
        self.owner = None  # the sample (a dataflow.SampleDecode) that holds the slot
        self.gen = None  # the owner's current streaming generator
        self.done_ref = None  # ready when the worker has finished with the owner
        self.dead = False  # the worker died holding the owner: the owner restarts it


class DecodePool:
    """A fixed number of decode worker slots; workers are placed on this process's node if it has room."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a decode pool needs at least one worker, got {size}")
        self._placement = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=True)
        self._lock = threading.Lock()
        self.restarts = 0
        self.slots = [_Slot(i) for i in range(size)]
        for slot in self.slots:
            self._start_worker(slot)

    def __len__(self) -> int:
        return len(self.slots)

    # -- workers ------------------------------------------------------------------------
    def _start_worker(self, slot: _Slot) -> None:
        if slot.actor is not None:
            ray.kill(slot.actor, no_restart=True)
        slot.actor = _WORKER.options(scheduling_strategy=self._placement).remote()
        slot.ready_ref, slot.pid = slot.actor.pid.remote(), None

    def _ready(self, slot: _Slot) -> bool:
        """Whether the slot's worker process is up (a worker that cannot be placed never gets work)."""
        if slot.pid is None and slot.ready_ref is not None:
            ready, _ = ray.wait([slot.ready_ref], timeout=0)
            if ready:
                try:
                    slot.pid = ray.get(slot.ready_ref)
                except RayActorError:
                    if slot.owner is None:
                        self._start_worker(slot)  # died while starting: try a fresh one
                    return False
        return slot.pid is not None

    def pids(self) -> dict[int, object]:
        """pid of each live worker -> its owner (or None): for tests and diagnostics."""
        with self._lock:
            return {slot.pid: slot.owner for slot in self.slots if self._ready(slot)}

    # -- slots --------------------------------------------------------------------------
    def acquire(self, stop: Callable[[], bool]) -> _Slot | None:
        """Waits for a slot whose worker is up and idle; None once ``stop()`` is true."""
        while not stop():
            with self._lock:
                for slot in self.slots:
                    if slot.owner is None and self._ready(slot):
                        return slot
                watching = {slot.done_ref: slot for slot in self.slots
                            if slot.owner is not None and not slot.dead and slot.done_ref is not None}
                starting = [slot.ready_ref for slot in self.slots if slot.owner is None and slot.pid is None]
            refs = [*watching, *starting]
            if not refs:
                time.sleep(0.02)  # every slot waits for its sample's consumer (to restart or release it)
                continue
            # short: a slot the encoder gives back (``release``) is noticed on the next round
            ready, _ = ray.wait(refs, num_returns=1, timeout=0.02)
            for ref in ready:
                if ref in watching:
                    self._settle(watching[ref], ref)
        return None

    def _settle(self, slot: _Slot, ref) -> None:
        """The worker has finished with the slot's sample: free the slot, or mark its worker dead."""
        try:
            ray.get(ref)
            died = False
        except Exception as err:  # noqa: BLE001 - a failed sample (its error travels with its parcels)
            died = worker_died(err)
        with self._lock:
            if slot.done_ref is not ref:
                return  # restarted or released meanwhile
            if died:
                slot.dead = True
            else:
                slot.owner = slot.gen = slot.done_ref = None

    def submit(self, slot: _Slot, owner, sample: Sample, config: ReadConfig, piece_frames: int | None,
               skip: int = 0):
        """Hands ``sample`` to the slot's worker; returns its generator of parcels."""
        parcel_bytes, parcels_ahead = parcel_plan(config, piece_frames)
        with self._lock:
            slot.owner, slot.dead = owner, False
            slot.gen = slot.actor.decode.options(
                num_returns="streaming", _generator_backpressure_num_objects=parcels_ahead,
            ).remote(sample, config, piece_frames, skip, parcel_bytes)
            slot.done_ref = slot.gen.completed()
            return slot.gen

    def restart(self, slot: _Slot, owner, sample: Sample, config: ReadConfig, piece_frames: int | None, skip: int):
        """A fresh worker in the owner's slot, decoding ``sample`` again from piece ``skip``."""
        with self._lock:
            if slot.owner is not owner:
                raise RuntimeError("restart of a slot the sample does not hold")
            self.restarts += 1
            self._start_worker(slot)
        return self.submit(slot, owner, sample, config, piece_frames, skip)

    def release(self, slot: _Slot, owner) -> None:
        """The owner is done with the slot; a worker still busy with it (or dead) is replaced."""
        with self._lock:
            if slot.owner is not owner:
                return
            finished = False
            if not slot.dead and slot.done_ref is not None:
                ready, _ = ray.wait([slot.done_ref], timeout=0)
                if ready:
                    try:
                        ray.get(slot.done_ref, timeout=0)
                        finished = True
                    except (GetTimeoutError, RayActorError):
                        finished = False
                    except Exception:  # noqa: BLE001 - the sample failed; its worker is fine
                        finished = True
            if not finished:
                self._start_worker(slot)  # abandoned mid-sample, or dead: a fresh one takes the slot
            slot.owner = slot.gen = slot.done_ref = None
            slot.dead = False

    def close(self) -> None:
        with self._lock:
            for slot in self.slots:
                if slot.actor is not None:
                    ray.kill(slot.actor, no_restart=True)
                slot.actor = slot.owner = slot.gen = slot.done_ref = slot.ready_ref = None
