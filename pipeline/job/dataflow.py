"""From shards to the encoder: samples read in order, decoded by a pool of workers, consumed in order.

One ``Dataflow`` per encoder lives as long as the encoder. ``open(url)`` queues a shard; a
feeder thread reads the queued shards one after another and hands each sample to a free
decode worker slot (``decode_workers.DecodePool``); the encoder takes ``turn``s in the order
the shards were opened and consumes each shard's items (error records and ``SampleDecode``s)
in input order. The next shard is read and decoded as soon as the current one's samples are
all handed out, while its last batches still encode.

Why it cannot deadlock, whatever the clip policy, worker count, batch or shard size:

1. Samples are handed to workers in input order, across shards, and each worker decodes
   what it was handed in that order. So whatever a worker runs before the oldest sample the
   encoder has not finished is older still, hence finished: that sample is always being
   decoded, or next in line behind work that ends by itself. A worker that dies is replaced,
   and takes no new sample before the samples it held are handed to the fresh process, in
   their order.
2. A worker waits on nothing but the encoder (the back-pressure of its parcel stream), and
   the encoder waits on nothing but the oldest sample's worker.
3. The feeder waits for a ticket (at most ``decode_workers + lookahead`` samples between the
   feeder and the encoder) and for a free slot. Both are given back by the encoder as it
   finishes samples, or by workers as they finish them; neither wait holds anything the
   oldest sample needs.

Memory stays bounded: at most that many samples' bytes are held, and each sample's decoded
pixels waiting in the object store are capped per worker (``decode_workers.BYTES_AHEAD``).
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ray

from ..reading import ClipPiece, ErrorRecord, ReadConfig, Sample, SampleError, iter_samples
from ..reading.records import STAGE_DECODE, STAGE_SHARD
from .decode_workers import CRASH_MESSAGE, DecodePool, failure, worker_died

_END = object()


class SampleDecode:
    """One sample's decoding, as the encoder consumes it: ``pieces()``, then ``close()``."""

    def __init__(self, flow: "Dataflow", slot, sample: Sample) -> None:
        self.flow = flow
        self.slot = slot
        self.sample = sample
        self.key = sample.key
        self.delivered = 0  # pieces handed to the encoder: a restarted worker skips them
        self.restarts = 0
        self.decode_seconds = 0.0  # worker time spent on this sample
        self._closed = False
        self._gen = flow.pool.submit(slot, self, sample, flow.read_config, flow.piece_frames)

    def pieces(self) -> Iterator[ClipPiece]:
        """The sample's pieces in order; raises SampleError after the last good one if decoding failed for good."""
        while True:
            try:
                parcel = ray.get(next(self._gen))
            except StopIteration:
                return
            except Exception as err:  # noqa: BLE001 - every failure is this sample's, or its worker's
                if not worker_died(err):
                    raise SampleError(failure(err, self.sample)) from None
                started = self.flow.pool.started(self.slot)
                if started and self.restarts >= 1:
                    crashed = ErrorRecord(STAGE_DECODE, "DecoderCrashed", CRASH_MESSAGE)
                    raise SampleError(crashed.at(self.sample.shard, self.key)) from None
                # not (yet) the sample's fault: its node went away, the OOM killer, or the sample queued
                # before it crashed the worker. Again, in a fresh worker.
                self.restarts += started
                self._gen = self.flow.pool.restart(self.slot, self, self.sample, self.flow.read_config,
                                                   self.flow.piece_frames, skip=self.delivered, started=started)
                continue
            self.decode_seconds += parcel.decode_seconds
            for piece in parcel.pieces:
                self.delivered += 1
                yield piece

    def close(self) -> None:
        """Gives back the slot (replacing a worker still busy with this sample) and the ticket."""
        if self._closed:
            return
        self._closed = True
        self._gen = None
        self.flow.pool.release(self.slot, self)
        self.flow._tickets.release()


class ShardFeed:
    """One opened shard: its items in input order, for the encoder."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._items: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self.abandoned = False
        self.decode_started_at: float | None = None  # time.time() when its first sample went to a worker

    def put(self, item: Any) -> None:
        with self._lock:
            if not self.abandoned:
                self._items.put(item)
                return
        if isinstance(item, SampleDecode):
            item.close()

    def get(self) -> Any:
        """The next item (ErrorRecord or SampleDecode), or None at the end of the shard."""
        item = self._items.get()
        if item is _END:
            self._items.put(_END)  # later calls see the end too
            return None
        return item

    def abandon(self) -> None:
        """Stops reading the shard and gives back whatever of it was not consumed."""
        with self._lock:
            self.abandoned = True
        while True:
            try:
                item = self._items.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, SampleDecode):
                item.close()


class Dataflow:
    """Reads opened shards in order and keeps ``decode_workers`` workers decoding ahead of the encoder."""

    def __init__(self, read_config: ReadConfig, storage_options: dict[str, Any] | None, piece_frames: int | None,
                 decode_workers: int | DecodePool, lookahead: int) -> None:
        """``decode_workers``: a number of workers to start, or a pool to share (then not closed here)."""
        self.read_config = read_config
        self.storage_options = storage_options
        self.piece_frames = piece_frames
        self._owns_pool = not isinstance(decode_workers, DecodePool)
        self.pool = DecodePool(decode_workers) if self._owns_pool else decode_workers
        self._tickets = threading.Semaphore(len(self.pool) + max(1, lookahead))
        self._opened: queue.Queue = queue.Queue()
        self._turns: deque[ShardFeed] = deque()
        self._turn_changed = threading.Condition()
        self._closing = threading.Event()
        self._feeder = threading.Thread(target=self._feed, name="dataflow-feeder", daemon=True)
        self._feeder.start()

    @property
    def decode_workers(self) -> int:
        return len(self.pool)

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
            with self._turn_changed:
                self._turns.popleft()
                self._turn_changed.notify_all()

    def close(self) -> None:
        self._closing.set()
        self._opened.put(None)
        self._feeder.join(timeout=10)
        if self._owns_pool:
            self.pool.close()

    # -- the feeder thread ------------------------------------------------------------------
    def _feed(self) -> None:
        while not self._closing.is_set():
            feed = self._opened.get()
            if feed is None:
                return
            try:
                self._read(feed)
            except Exception as err:  # noqa: BLE001 - iter_samples does not raise; Ray calls might
                feed.put(ErrorRecord.of(err, STAGE_SHARD, feed.url))
            finally:
                feed.put(_END)

    def _read(self, feed: ShardFeed) -> None:
        def stop() -> bool:
            return feed.abandoned or self._closing.is_set()

        for item in iter_samples(feed.url, self.read_config, self.storage_options):
            if stop():
                return
            if isinstance(item, ErrorRecord):
                feed.put(item)
                continue
            while not self._tickets.acquire(timeout=0.1):
                if stop():
                    return
            slot = self.pool.acquire(stop)
            if slot is None:
                self._tickets.release()
                return
            if feed.decode_started_at is None:
                feed.decode_started_at = time.time()
            feed.put(SampleDecode(self, slot, item))
