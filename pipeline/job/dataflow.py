"""From shards to the encoder: samples read in order, decoded by the encoder's workers, consumed in order.

One ``Dataflow`` per encoder. ``open(url)`` queues a shard; a feeder thread reads the queued shards one
after another, cuts their samples into *calls* (runs of consecutive samples) and hands each to a worker
with room; the encoder takes ``turn``s in the order the shards were opened and reads each shard's items
(error records and ``SampleDecode``s) in input order. The next shard is decoded as soon as the current
one's samples are handed out, while its last batches still encode. (The driver sends an encoder its next
shard only once the one before is open, so shards open in the order they were sent.)

Why it cannot deadlock, whatever the clip policy, worker count, call, batch or shard size: calls are
handed out in input order and each worker runs its calls in the order it was handed them. A call is
*open* until the encoder has closed all its samples, and a worker is handed a call only while it holds
fewer than ``DEPTH``. So the call with the oldest open sample is its worker's first open call: every call
before it was received whole (the worker is done with it), or was given up, and then the worker was
replaced and its open calls handed to the fresh process first, in order (together with another worker's,
in input order, should the fresh one find no CPU). That call is decoded now, held back only by the parcels
the encoder is reading; the feeder waits only for room that the encoder's reading gives back.

Memory stays bounded: at most ``DEPTH`` open calls per worker of the pool hold compressed bytes (a call
holds at most ``MAX_CALL_SAMPLES`` samples, more than one only while under ``MAX_CALL_BYTES``), and each
call holds at most ``BYTES_AHEAD`` of decoded pixels ahead of the encoder.

A worker's state changes only under the pool's lock (Ray's placement callback posts the news for the
next locked section to apply), and nothing under the lock waits for the cluster: workers are killed, and
the cluster's free CPUs asked for, after it is released.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ..reading import ClipPiece, ErrorRecord, ReadConfig, Sample, SampleError, iter_samples
from ..reading.records import STAGE_DECODE, STAGE_SHARD, cause_of
from .crash_blame import CRASH_MESSAGE, blame
from .decode_capacity import DecodeWorkers, NoDecodeCPU
from .decode_workers import CALL_SECONDS, MAX_CALL_BYTES, MAX_CALL_SAMPLES, WORKER, Part, parcel_plan, worker_died

DEPTH = 4  # open calls per worker: the one it decodes and three more, so it does not run dry while the encoder
# encodes a batch (decode-bound stand-in, docs/benchmarks.md: 2 left it idle 12-17%; 4 is 4% faster than 3)
FIRST_CALL_SAMPLES = 1  # samples per call until a sample's decoding time is known


class SampleDecode:
    """One sample's decoding, as the encoder reads it: ``pieces()``, then ``close()``."""

    def __init__(self, call: Call, index: int, sample: Sample) -> None:
        self.call, self.index, self.sample, self.key = call, index, sample, sample.key
        self.delivered = 0  # pieces handed to the encoder: a fresh worker skips them
        self.suspicions = 0  # worker deaths it may have caused
        self.decode_seconds = 0.0
        self.ended = False  # its last part arrived, or it failed
        self.closed = False

    def pieces(self) -> Iterator[ClipPiece | ErrorRecord]:
        """The sample's pieces in order, with the reader's warnings where it gave them; raises SampleError after
        the last good one if decoding failed."""
        while not self.ended:
            part = self.call.next_part(self)
            yield from part.pieces
            if part.error is not None:
                raise SampleError(part.error)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.call.pool.closed(self)


class Call:
    """Consecutive samples of one shard, decoded by one worker (again by a fresh one after its worker died)."""

    def __init__(self, pool: DecodePool, feed: ShardFeed, samples: list[Sample]) -> None:
        self.pool, self.feed = pool, feed
        self.seq = next(pool.calls_made)  # calls are made in input order, by the feeder
        self.decodes = [SampleDecode(self, index, sample) for index, sample in enumerate(samples)]
        self.worker: _Worker | None = None
        self.gen = None  # its stream of parcels; None once ended
        self.base = 0  # index of the first sample of that stream
        self.each_sample = False  # that stream sends a parcel at every sample's end (after a crash)
        self.parts: deque[Part] = deque()

    def unfinished(self) -> list[SampleDecode]:
        return [d for d in self.decodes if not d.ended and not d.closed]

    def next_part(self, decode: SampleDecode) -> Part:
        """The next part of ``decode``'s sample (parts of samples closed before they ended are dropped)."""
        while True:
            with self.pool.locked():
                while self.parts:
                    part = self.parts.popleft()
                    if self.base + part.index == decode.index:
                        decode.delivered += len(part.pieces)
                        decode.decode_seconds += part.decode_seconds
                        decode.ended = part.end
                        return part
                    if self.base + part.index > decode.index:
                        raise RuntimeError(f"decode worker protocol: a later sample came before {decode.key} ended")
                gen = self.gen
                if gen is None:
                    decode.ended = True
                    raise SampleError(failure(RuntimeError("its decode worker call ended before it did"), decode))
            parcel = error = None
            try:
                parcel = ray.get(next(gen))
            except StopIteration:
                pass
            except Exception as err:  # noqa: BLE001 - every failure is a sample's, or its worker's
                error = err
            with self.pool.locked():
                if self.gen is not gen:
                    continue  # handed to a fresh worker meanwhile: the old stream's news is stale
                if parcel is not None:
                    self.parts.extend(parcel)
                elif error is None:
                    self.gen = None
                else:
                    self.pool.failed(self, decode, error)


def failure(err: BaseException, decode: SampleDecode) -> ErrorRecord:
    """The sample's own record if the error was a sample's, else one made of whatever went wrong."""
    cause = cause_of(err)
    if isinstance(cause, SampleError):
        return cause.record
    return ErrorRecord.of(err, STAGE_DECODE, decode.sample.shard, decode.key)


class _Worker:
    """One worker actor (placed on the encoder's node if it has room, else wherever the cluster has a CPU),
    its open calls in the order they were handed to it, and its state: "starting", "up" (on ``node``),
    "late" (not up after the settings' ``start_seconds``), "failed" (died before it was up) or "gone" (retired)."""

    def __init__(self, pool: DecodePool, calls: list[Call]) -> None:
        self.actor = WORKER.options(scheduling_strategy=pool.placement).remote()
        self.state, self.node, self.calls = "starting", None, calls
        self.deadline = threading.Timer(pool.settings.start_seconds, pool.late, (self,))
        self.deadline.daemon = True
        self.deadline.start()
        self.actor.where.remote().future().add_done_callback(lambda done: pool.placed_news(self, done))


class DecodePool:
    """An encoder's decode workers and the calls they hold."""

    def __init__(self, settings: DecodeWorkers, config: ReadConfig, piece_frames: int | None) -> None:
        self.settings, self.config, self.piece_frames = settings, config, piece_frames
        self.parcel_bytes, self.parcels_ahead = parcel_plan(config, piece_frames)
        self.lock = threading.Lock()
        self.wake = threading.Event()  # set when a worker is placed or late, or a call closes (the feeder waits)
        self.placement = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True,
                                                        _spill_on_unavailable=True)
        self.workers: list[_Worker] = []
        self.calls_made = itertools.count()
        self.sample_seconds: float | None = None  # running mean of a sample's decoding time
        self._news: queue.SimpleQueue = queue.SimpleQueue()  # (worker, node or None): placements to apply
        self._retired: list[_Worker] = []  # to kill once the lock is released

    def resize(self) -> None:
        """As many workers as the settings say now (idle ones leave first). NoDecodeCPU if there are none."""
        try:
            target = self.settings.now()
        except NoDecodeCPU:
            if not self.workers:
                raise
            return  # keeps what it has
        with self.locked():
            self.workers += [_Worker(self, []) for _ in range(target - len(self.workers))]
            for worker in [w for w in self.workers if not w.calls][:max(0, len(self.workers) - target)]:
                self._retire(worker)

    def group_size(self) -> int:
        """Samples for the next call: as many as make a call last about ``CALL_SECONDS`` (one until one is seen)."""
        if self.sample_seconds is None:
            return FIRST_CALL_SAMPLES
        return max(1, min(MAX_CALL_SAMPLES, int(CALL_SECONDS / max(self.sample_seconds, 1e-4))))

    def placed(self) -> dict[str, Any]:
        """Workers, how many are up per node, and how many found no CPU in ``start_seconds``."""
        with self.locked():
            nodes = Counter(w.node for w in self.workers if w.state == "up")
            return {"workers": len(self.workers), "nodes": dict(nodes),
                    "unplaced": sum(w.state == "late" for w in self.workers)}

    def waiting_for_cpu(self) -> int:
        """Workers not up that hold calls: the encoder waits for them (a replacement after a lost node)."""
        with self.locked():
            return sum(1 for w in self.workers if w.calls and w.state != "up")

    # -- news from Ray's and the timers' threads -------------------------------------------------------
    def placed_news(self, worker: _Worker, future) -> None:
        """Ray's callback, on one of its threads: it only posts the news (the next locked section applies it)."""
        self._news.put((worker, future.result() if future.exception() is None else None))
        self.wake.set()

    def late(self, worker: _Worker) -> None:
        """A worker's ``start_seconds`` are up. If it is still not up and holds calls (the encoder waits for them:
        a replacement whose node went away, and no CPU is free for it), they go with the open calls of the up
        worker holding fewest, in input order, to one fresh process in that worker's place (the pool is one
        smaller until the next shard re-sizes it; while none is up, they wait for a CPU)."""
        with self.locked():
            if worker.state == "starting":
                worker.state = "late"
            hosts = [w for w in self.workers if w.state == "up"]
            if worker.state == "late" and worker.calls and hosts:
                host = min(hosts, key=lambda w: len(w.calls))
                self._retire(worker)
                host.calls = sorted(host.calls + worker.calls, key=lambda call: call.seq)
                self._replace(host)
        self.wake.set()

    # -- under the lock ----------------------------------------------------------------------------------
    @contextmanager
    def locked(self):
        """The pool's lock, the placements posted meanwhile applied; the workers retired under it are killed
        once it is released (a kill waits for the cluster)."""
        retired: list[_Worker] = []
        try:
            with self.lock:
                self._apply_news()
                try:
                    yield
                finally:
                    retired, self._retired = self._retired, []
        finally:
            for worker in retired:
                ray.kill(worker.actor, no_restart=True)

    def _apply_news(self) -> None:
        while not self._news.empty():
            worker, node = self._news.get()
            if worker.state in ("starting", "late"):
                worker.state, worker.node = ("up", node) if node else ("failed", None)
                worker.deadline.cancel()

    def _retire(self, worker: _Worker) -> None:
        worker.state = "gone"
        worker.deadline.cancel()
        if worker in self.workers:
            self.workers.remove(worker)
        self._retired.append(worker)

    def _submit(self, call: Call, again: bool) -> None:
        """Hands the call's unfinished samples (the first from its first undelivered piece) to its worker."""
        todo = call.unfinished()
        call.each_sample, call.gen = again, None
        call.parts.clear()
        if todo:
            call.base = todo[0].index
            call.gen = call.worker.actor.decode.options(
                num_returns="streaming", _generator_backpressure_num_objects=self.parcels_ahead,
            ).remote([d.sample for d in call.decodes[call.base:]], self.config, self.piece_frames,
                     todo[0].delivered, self.parcel_bytes, again)

    def _replace(self, worker: _Worker) -> None:
        """A fresh process in the worker's place; its open calls go to it first, in order."""
        if worker not in self.workers:
            return  # the pool was closed: nothing is decoded any more
        index = self.workers.index(worker)
        self._retire(worker)
        fresh = _Worker(self, worker.calls)
        self.workers.insert(index, fresh)
        for call in fresh.calls:
            call.worker = fresh
            self._submit(call, again=True)

    # -- the feeder ----------------------------------------------------------------------------------
    def assign(self, call: Call, stopped) -> bool:
        """Hands the call to the up worker with the fewest open calls once one has room; False if stopped first.
        NoDecodeCPU if every worker is late and the cluster has no free CPU."""
        while True:
            self.wake.clear()
            with self.locked():
                if stopped():
                    return False
                for worker in [w for w in self.workers if w.state == "failed"]:
                    self._replace(worker)
                ready = [w for w in self.workers if w.state == "up" and len(w.calls) < DEPTH]
                if ready:
                    call.worker = min(ready, key=lambda w: len(w.calls))
                    call.worker.calls.append(call)
                    self._submit(call, again=False)
                all_late = all(w.state == "late" for w in self.workers)
            if call.worker is not None:
                return True
            if all_late and ray.available_resources().get("CPU", 0) < 1:
                raise self.settings.no_cpu()
            self.wake.wait()  # for a placement, a closed call, or a worker's time to be placed running out

    # -- the encoder ---------------------------------------------------------------------------------
    def failed(self, call: Call, decode: SampleDecode, err: Exception) -> None:
        """Under the lock: the stream failed while ``decode`` waited: its unfinished samples go to a fresh process.
        Raises SampleError for ``decode`` if the failure is its own (an error of the call, or see crash_blame)."""
        record = None
        if call.worker not in self.workers or not worker_died(err):  # closed, or an error of the call
            record = failure(err, decode)
        else:
            suspects = call.unfinished()  # the samples before it are closed: the encoder reads in order
            verdict = blame(call.worker.calls[0] is call, call.each_sample, tuple(d.suspicions for d in suspects))
            call.feed.retried += verdict.retry
            if verdict.crashed:
                record = ErrorRecord(STAGE_DECODE, "DecoderCrashed", CRASH_MESSAGE).at(decode.sample.shard, decode.key)
            for suspect, count in zip(suspects[verdict.crashed:], verdict.suspicions):
                suspect.suspicions = count
        decode.ended = record is not None
        self._replace(call.worker)
        if record is not None:
            raise SampleError(record)

    def closed(self, decode: SampleDecode) -> None:
        """The encoder is done with a sample; after a call's last, its worker has room again (a worker
        still on a call given up before it ended is replaced)."""
        call = decode.call
        with self.locked():
            if decode.ended:
                seconds, mean = decode.decode_seconds, self.sample_seconds
                self.sample_seconds = seconds if mean is None else 0.9 * mean + 0.1 * seconds
            if call.worker is None or not all(d.closed for d in call.decodes):
                return
            call.worker.calls.remove(call)
            if call.gen is not None and not all(d.ended for d in call.decodes):
                self._replace(call.worker)
        self.wake.set()

    def close(self) -> None:
        with self.locked():
            for worker in list(self.workers):
                self._retire(worker)


class ShardFeed:
    """One opened shard: its items in input order, for the encoder; iterating it ends with the shard (or raises
    what ended it: NoDecodeCPU)."""

    def __init__(self, url: str) -> None:
        self.url, self.abandoned = url, False
        self._items: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._ended = False
        self._failure: BaseException | None = None
        self.decode_started_at: float | None = None  # time.time() when its first sample went to a worker
        self.calls = self.retried = 0  # worker calls its samples took; samples decoded again after a worker died

    def put(self, item: Any) -> None:
        with self._lock:
            if not self.abandoned:
                return self._items.put(item)
        if isinstance(item, SampleDecode):
            item.close()

    def end(self, failure: BaseException | None = None) -> None:
        self._failure = failure
        self._items.put(None)

    def __iter__(self) -> Iterator[ErrorRecord | SampleDecode]:
        while not self._ended:
            item = self._items.get()
            if item is None:
                self._ended = True
                if self._failure is not None:
                    raise self._failure
                return
            yield item

    def abandon(self) -> None:
        """Stops reading the shard and gives back whatever of it was not read."""
        with self._lock:
            self.abandoned = True  # nothing is put after this
        while not self._items.empty():
            if isinstance(item := self._items.get(), SampleDecode):
                item.close()


class Dataflow:
    """Reads opened shards in order and keeps the encoder's decode workers decoding ahead of it."""

    def __init__(self, read_config: ReadConfig, storage_options: dict[str, Any] | None, piece_frames: int | None,
                 decode_workers: DecodeWorkers) -> None:
        self.read_config = read_config
        self.storage_options = storage_options
        self.piece_frames = piece_frames  # pieces of whole-video clips (None: each piece is a clip)
        self.pool = DecodePool(decode_workers, read_config, piece_frames)
        self._opened: queue.Queue = queue.Queue()
        self._turns: deque[ShardFeed] = deque()
        self._turn_changed = threading.Condition()
        self._closing = threading.Event()
        self._feeder = threading.Thread(target=self._feed, name="dataflow-feeder", daemon=True)
        self._feeder.start()

    def open(self, url: str) -> ShardFeed:
        """Queues a shard: it is read and decoded as soon as the shards opened before it are handed out."""
        feed = ShardFeed(url)
        with self._turn_changed:
            self._turns.append(feed)
            self._opened.put(feed)
        return feed

    @contextmanager
    def turn(self, feed: ShardFeed):
        """The encoder's turn on ``feed``: shards are encoded one at a time, in the order they were opened."""
        with self._turn_changed:
            self._turn_changed.wait_for(lambda: self._turns[0] is feed)
        try:
            yield feed
        finally:
            feed.abandon()  # nothing left on success; on failure, stops its reading and frees its workers
            self.pool.wake.set()
            with self._turn_changed:
                self._turns.popleft()
                self._turn_changed.notify_all()

    def close(self) -> None:
        self._closing.set()
        self._opened.put(None)
        self.pool.wake.set()
        self._feeder.join(timeout=10)
        self.pool.close()

    # -- the feeder thread ---------------------------------------------------------------------------
    def _feed(self) -> None:
        while (feed := self._opened.get()) is not None:
            failure = None
            try:
                self.pool.resize()  # nodes may have joined or left since the last shard (NoDecodeCPU: none)
                self._read(feed)
            except NoDecodeCPU as err:
                failure = err
            except Exception as err:  # noqa: BLE001 - iter_samples does not raise; Ray calls might
                feed.put(ErrorRecord.of(err, STAGE_SHARD, feed.url))
            finally:
                feed.end(failure)

    def _read(self, feed: ShardFeed) -> None:
        """Hands the shard's samples out in calls of ``group_size()`` consecutive samples (fewer at its end,
        or when they hold ``MAX_CALL_BYTES``); error records keep their place among them."""
        def stopped() -> bool:
            return feed.abandoned or self._closing.is_set()

        pending: list = []  # samples not handed out yet, and error records read after the first of them
        for item in iter_samples(feed.url, self.read_config, self.storage_options):
            if stopped():
                return
            if isinstance(item, ErrorRecord) and not pending:
                feed.put(item)
                continue
            pending.append(item)
            samples = [i for i in pending if isinstance(i, Sample)]
            if len(samples) >= self.pool.group_size() or sum(len(s.media) for s in samples) >= MAX_CALL_BYTES:
                if not self._hand_out(feed, pending, stopped):
                    return
                pending = []
        if pending and not stopped():
            self._hand_out(feed, pending, stopped)

    def _hand_out(self, feed: ShardFeed, items: list, stopped) -> bool:
        """One call for the samples among ``items``, all put in the feed in order; False if stopped first."""
        call = Call(self.pool, feed, [i for i in items if isinstance(i, Sample)])
        if not self.pool.assign(call, stopped):
            return False
        feed.calls += 1
        if feed.decode_started_at is None:
            feed.decode_started_at = time.time()
        decodes = iter(call.decodes)
        for item in items:
            feed.put(next(decodes) if isinstance(item, Sample) else item)
        return True
