"""Decode worker processes: long-lived Ray actors, one CPU each, beside their encoder.

A worker is handed *calls*: runs of consecutive samples of one shard (one sample when samples
take a while to decode, several when they are quick, so that Ray's cost per call stays small
against the decoding: ``DecodePool.group_size``). It decodes a call's samples in order and
streams their clips back in *parcels* (several clips, of one or more samples, per object, while
a whole-video clip still arrives in bounded pieces). Each worker holds a queue of two calls:
the one it decodes and the next, so it never waits for work.

A crash inside a video library kills only the worker's process: the encoder sees an actor
error, starts a fresh worker in the call's slot and decodes the call's unfinished samples
again there, skipping the pieces it already has, one parcel per sample so that a second crash
names its sample. Only a crash that repeats in a fresh worker while decoding the same sample
is that sample's fault (a ``DecoderCrashed`` error row): a worker can also die for reasons of
its own (its node went away, the OOM killer), and samples queued behind the one that crashed
lost nothing of their own.

A ``DecodePool`` holds ``size x depth`` *slots*, places in the workers' queues. A slot belongs
to one call from the moment it is handed to it until its worker has finished with it; a call
whose worker died keeps its slot, and its worker takes no new call before the calls it held
have been handed to a fresh process. See ``dataflow`` for why that makes the whole flow
deadlock-free.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import ray
from ray.exceptions import GetTimeoutError, RayActorError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ..reading import ClipPiece, ErrorRecord, ReadConfig, Sample, SampleError, decode_clips
from ..reading.records import STAGE_DECODE, cause_of

# Decoded pixels per object handed back (several small clips travel together).
PARCEL_BYTES = 4 * 2**20
# Decoded pixels one worker may hold ready ahead of the encoder: bounds memory for long videos.
BYTES_AHEAD = 48 * 2**20
# Worker time a call aims at: Ray's cost per call (a few ms on a busy node) stays a few percent of it.
CALL_SECONDS = 0.05
# At most this many samples, and this many compressed bytes, per call.
MAX_CALL_SAMPLES = 16
MAX_CALL_BYTES = 16 * 2**20

CRASH_MESSAGE = ("the worker process decoding this sample died twice, the second time in a fresh worker (a crash inside the "
                 "video decoder, or it was killed)")


@dataclass
class Part:
    """Consecutive pieces of the ``index``-th sample of a call; ``end``: the sample is done (failed if ``error``)."""

    index: int
    pieces: list[ClipPiece] = field(default_factory=list)
    decode_seconds: float = 0.0
    end: bool = False
    error: ErrorRecord | None = None


@dataclass
class Parcel:
    """What one object carries: parts of one or more consecutive samples, in order."""

    parts: list[Part]


class DecodeWorker:
    """The worker process: decodes one call's samples per call, as a streaming generator of parcels."""

    def pid(self) -> int:
        return os.getpid()

    def decode(self, samples: list[Sample], config: ReadConfig, piece_frames: int | None, skip: int,
               parcel_bytes: int, each_sample: bool) -> Iterator[Parcel]:
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
                    yield Parcel(parts)
                    part = Part(index)
                    parts, size = [part], 0
                    began = time.perf_counter()
                part.pieces.append(piece)
                size += piece.frames.nbytes
            part.decode_seconds += time.perf_counter() - began
            part.end = True
            if each_sample:
                yield Parcel(parts)
                parts, size = [], 0
        if parts:
            yield Parcel(parts)


# max_restarts=0: a dead worker is replaced by the pool, which knows which calls it held.
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


def failure(err: BaseException, sample: Sample) -> ErrorRecord:
    """The record of an error raised while fetching a parcel ``sample`` waited for: the worker's own
    record if it was a sample's, else one made of whatever went wrong on the way."""
    cause = cause_of(err)
    if isinstance(cause, SampleError):
        return cause.record
    return ErrorRecord.of(err, STAGE_DECODE, sample.shard, sample.key)


def worker_died(err: BaseException) -> bool:
    """An error that means the worker process is gone (not that the sample failed in it)."""
    return isinstance(err, RayActorError)


class _Worker:
    """One worker process and what was last handed to it."""

    def __init__(self) -> None:
        self.actor = None
        self.ready_ref = None  # the worker's pid, once its process is up
        self.pid: int | None = None
        self.last_done = None  # done_ref of the last call handed to this actor


class _Slot:
    """A place in a worker's queue, held by one call until the worker has finished with it."""

    def __init__(self, worker: _Worker) -> None:
        self.worker = worker
        self.owner = None  # the call (a dataflow.DecodeCall) that holds the slot
        self.actor = None  # the actor the owner was handed to
        self.gen = None  # the owner's current streaming generator
        self.done_ref = None  # ready when the worker has finished with the owner
        self.before = None  # done_ref of the call queued before it on the same actor
        self.dead = False  # its actor died holding the owner: the owner restarts it
        self.finishing = False  # the owner has all it asked for; the worker has only to return
        self.seq = 0  # order of submission: a worker runs its calls in this order


class DecodePool:
    """``size`` worker processes, each with a queue of ``depth`` calls (the one it decodes and the
    next, so it never waits for work); placed on this process's node when it has room.

    ``call_samples``: samples per call; by default (None) as many as make a call last about
    ``CALL_SECONDS`` of decoding, judged by the samples decoded so far (one until then).
    """

    def __init__(self, size: int, depth: int = 2, call_samples: int | None = None) -> None:
        if size < 1:
            raise ValueError(f"a decode pool needs at least one worker, got {size}")
        if call_samples is not None and call_samples < 1:
            raise ValueError(f"call_samples must be at least 1, got {call_samples}")
        self.call_samples = call_samples
        self._sample_seconds: float | None = None  # running mean of a sample's decoding time
        self._placement = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=True)
        self._lock = threading.Lock()
        self.restarts = 0
        self.calls = 0  # calls handed to workers, a restart included
        self.workers = [_Worker() for _ in range(size)]
        self.slots = [_Slot(worker) for _ in range(depth) for worker in self.workers]
        for worker in self.workers:
            self._start_worker(worker)

    def __len__(self) -> int:
        return len(self.workers)

    # -- call sizes ----------------------------------------------------------------------------
    def group_size(self) -> int:
        """How many samples the next call takes (see the class docstring)."""
        if self.call_samples is not None:
            return self.call_samples
        seconds = self._sample_seconds
        if seconds is None:
            return 1
        return max(1, min(MAX_CALL_SAMPLES, int(CALL_SECONDS / max(seconds, 1e-4))))

    def observe(self, decode_seconds: float) -> None:
        """A sample was decoded in ``decode_seconds`` of worker time."""
        with self._lock:
            previous = self._sample_seconds
            self._sample_seconds = decode_seconds if previous is None else 0.9 * previous + 0.1 * decode_seconds

    # -- workers (under the lock) ------------------------------------------------------------
    def _start_worker(self, worker: _Worker) -> None:
        """A fresh process for ``worker``; calls handed to the old one are marked dead (their owners restart them)."""
        old = worker.actor
        if old is not None:
            ray.kill(old, no_restart=True)
            for slot in self.slots:
                if slot.actor is old and slot.owner is not None:
                    slot.dead = True
        worker.actor = _WORKER.options(scheduling_strategy=self._placement).remote()
        worker.ready_ref, worker.pid, worker.last_done = worker.actor.pid.remote(), None, None

    def _ready(self, worker: _Worker) -> bool:
        """Whether the worker's process is up (a worker that cannot be placed never gets work)."""
        if worker.pid is None and worker.ready_ref is not None:
            ready, _ = ray.wait([worker.ready_ref], timeout=0)
            if ready:
                try:
                    worker.pid = ray.get(worker.ready_ref)
                except RayActorError:
                    if not any(slot.owner is not None for slot in self.slots if slot.worker is worker):
                        self._start_worker(worker)  # died while starting: try a fresh one
                    return False
        return worker.pid is not None

    def _open_slot(self) -> _Slot | None:
        """A free slot of an up worker with no sample waiting to restart, the least busy worker first."""
        best, best_load = None, None
        for worker in self.workers:
            mine = [slot for slot in self.slots if slot.worker is worker]
            if any(slot.dead for slot in mine) or not self._ready(worker):
                continue  # its restarts go first: they are older than any new sample
            free = [slot for slot in mine if slot.owner is None]
            load = len(mine) - len(free)
            if free and (best_load is None or load < best_load):
                best, best_load = free[0], load
        return best

    def pids(self) -> dict[int, list[Sample]]:
        """pid of each live worker -> the samples it holds that have not ended, in the order it decodes them
        (as far as the encoder knows: a call's parcels may still be on their way): for tests and diagnostics."""
        with self._lock:
            return {worker.pid: [sample for slot in sorted(self.slots, key=lambda slot: slot.seq)
                                 if slot.owner is not None and slot.actor is worker.actor
                                 for sample in slot.owner.waiting()]
                    for worker in self.workers if self._ready(worker)}

    # -- slots ----------------------------------------------------------------------------
    def acquire(self, stop: Callable[[], bool]) -> _Slot | None:
        """Waits for a free slot (see ``_open_slot``); None once ``stop()`` is true."""
        while not stop():
            with self._lock:
                slot = self._open_slot()
                if slot is not None:
                    return slot
                watching = {slot.done_ref: slot for slot in self.slots
                            if slot.owner is not None and not slot.dead and slot.done_ref is not None}
                starting = [worker.ready_ref for worker in self.workers if worker.pid is None]
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
        """The worker has finished with the slot's call: free the slot, or mark it dead (for its owner to
        restart; an owner that has all it asked for restarts nothing, so its worker is replaced here)."""
        died = _died(ref)
        with self._lock:
            if slot.done_ref is not ref:
                return  # restarted or released meanwhile
            if died and not slot.finishing:
                slot.dead = True
                return
            if died and slot.worker.actor is slot.actor:
                self._start_worker(slot.worker)
            self._free(slot)

    @staticmethod
    def _free(slot: _Slot) -> None:
        slot.owner = slot.actor = slot.gen = slot.done_ref = slot.before = None
        slot.dead = slot.finishing = False

    def submit(self, slot: _Slot, owner, samples: list[Sample], config: ReadConfig, piece_frames: int | None,
               skip: int = 0, each_sample: bool = False):
        """Queues a call of ``samples`` on the slot's worker; returns its generator of parcels."""
        parcel_bytes, parcels_ahead = parcel_plan(config, piece_frames)
        with self._lock:
            worker = slot.worker
            slot.owner, slot.dead, slot.actor, slot.before = owner, False, worker.actor, worker.last_done
            self.calls += 1
            slot.seq = self.calls
            slot.gen = worker.actor.decode.options(
                num_returns="streaming", _generator_backpressure_num_objects=parcels_ahead,
            ).remote(samples, config, piece_frames, skip, parcel_bytes, each_sample)
            slot.done_ref = worker.last_done = slot.gen.completed()
            return slot.gen

    def started(self, slot: _Slot) -> bool:
        """Whether the slot's call had started in its (dead) worker; one queued behind another
        call lost nothing of its own."""
        with self._lock:
            return slot.before is None or (_ready_now(slot.before) and not _died(slot.before))

    def restart(self, slot: _Slot, owner, samples: list[Sample], config: ReadConfig, piece_frames: int | None,
                skip: int, retry: bool):
        """After the owner's call failed: decodes ``samples`` (its unfinished ones, the first from piece
        ``skip``) in a fresh worker, one parcel per sample. ``retry``: a sample is decoded again because a
        worker died on it (counted in ``restarts``). Returns the new generator, or None if no sample is left."""
        with self._lock:
            if slot.owner is not owner:
                raise RuntimeError("restart of a slot the call does not hold")
            if slot.worker.actor is slot.actor:
                self._start_worker(slot.worker)  # else a call queued before it already started a fresh one
            self.restarts += retry
            if not samples:
                slot.dead, slot.gen, slot.done_ref = False, None, None  # nothing left to run in the fresh worker
                return None
        return self.submit(slot, owner, samples, config, piece_frames, skip, each_sample=True)

    def release(self, slot: _Slot, owner, complete: bool) -> None:
        """The owner is done with the slot. ``complete``: it received all the call sends, so a worker still
        on the call has only to return (the slot is freed when it has). Otherwise a worker still busy with
        it is replaced (and one that died holding it is replaced if nothing replaced it yet)."""
        with self._lock:
            if slot.owner is not owner:
                return
            if complete and not slot.dead and slot.done_ref is not None and not _ready_now(slot.done_ref):
                slot.finishing = True
                return
            finished = not slot.dead and (slot.done_ref is None or (_ready_now(slot.done_ref)
                                                                    and not _died(slot.done_ref)))
            if not finished and slot.worker.actor is slot.actor:
                self._start_worker(slot.worker)
            self._free(slot)

    def close(self) -> None:
        with self._lock:
            for worker in self.workers:
                if worker.actor is not None:
                    ray.kill(worker.actor, no_restart=True)
                worker.actor = worker.ready_ref = worker.last_done = None
            for slot in self.slots:
                self._free(slot)


def _ready_now(ref) -> bool:
    ready, _ = ray.wait([ref], timeout=0)
    return bool(ready)


def _died(ref) -> bool:
    """Whether a finished sample's worker died under it (a sample that failed leaves its worker fine)."""
    try:
        ray.get(ref, timeout=0)
        return False
    except GetTimeoutError:
        return False
    except Exception as err:  # noqa: BLE001 - the sample's own error travels with its parcels
        return worker_died(err)
