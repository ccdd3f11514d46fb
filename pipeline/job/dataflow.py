"""From shards to the encoder: samples read in order, decoded by a pool of workers, consumed in order.

One ``Dataflow`` per encoder lives as long as the encoder. ``open(url)`` queues a shard; a
feeder thread reads the queued shards one after another and hands their samples to free
decode worker slots (``decode_workers.DecodePool``) in *calls* of consecutive samples (one
sample when samples are slow to decode, several when they are quick); the encoder takes
``turn``s in the order the shards were opened and consumes each shard's items (error records
and ``SampleDecode``s) in input order. The next shard is read and decoded as soon as the
current one's samples are all handed out, while its last batches still encode.

Why it cannot deadlock, whatever the clip policy, worker count, call, batch or shard size:

1. Samples are handed to workers in input order, across shards, and each worker decodes
   what it was handed in that order. So whatever a worker runs before the oldest sample the
   encoder has not finished is older still, hence finished: that sample is always being
   decoded, or next in line behind work that ends by itself. A worker that dies is replaced,
   and takes no new call before the calls it held are handed to the fresh process, in their
   order.
2. A worker waits on nothing but the encoder (the back-pressure of its parcel stream), and
   the encoder waits on nothing but the oldest sample's worker.
3. The feeder waits for a ticket (at most ``decode_workers + lookahead`` calls between the
   feeder and the encoder) and for a free slot. Both are given back by the encoder as it
   finishes calls, or by workers as they finish them; neither wait holds anything the oldest
   sample needs.

Memory stays bounded: at most that many calls' compressed bytes are held (a call holds at most
``MAX_CALL_SAMPLES`` samples, and more than one only while they hold under ``MAX_CALL_BYTES``),
and the decoded pixels waiting in the object store are capped per worker (``BYTES_AHEAD``).
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
from .decode_workers import CRASH_MESSAGE, MAX_CALL_BYTES, DecodePool, Part, failure, worker_died

_END = object()


class SampleDecode:
    """One sample's decoding, as the encoder consumes it: ``pieces()``, then ``close()``."""

    def __init__(self, call: "DecodeCall", index: int, sample: Sample) -> None:
        self.call = call
        self.index = index  # in the call's samples
        self.sample = sample
        self.key = sample.key
        self.delivered = 0  # pieces handed to the encoder: a fresh worker skips them
        self.deaths = 0  # workers that died while it may have been what they decoded
        self.decode_seconds = 0.0  # worker time spent on this sample
        self.ended = False  # its last part arrived (or it failed)
        self.closed = False

    def pieces(self) -> Iterator[ClipPiece]:
        """The sample's pieces in order; raises SampleError after the last good one if decoding failed for good."""
        while not self.ended:
            try:
                part = self.call.next_part(self)
            except SampleError:
                self.ended = True  # failed for good, with nothing more to come
                raise
            self.decode_seconds += part.decode_seconds
            for piece in part.pieces:
                self.delivered += 1
                yield piece
            if part.end:
                self.ended = True
                if part.error is not None:
                    raise SampleError(part.error)

    def close(self) -> None:
        """The encoder is done with the sample (its call gives back the slot and ticket after its last sample)."""
        if not self.closed:
            self.closed = True
            self.call.closed(self)


class DecodeCall:
    """Consecutive samples of one shard, decoded by one worker call (again in a fresh worker after a
    crash) and read by the encoder in order, each through its ``SampleDecode``."""

    def __init__(self, flow: "Dataflow", slot, samples: list[Sample]) -> None:
        self.flow = flow
        self.slot = slot
        self.decodes = [SampleDecode(self, index, sample) for index, sample in enumerate(samples)]
        self._open = len(samples)
        self._base = 0  # index of the first sample of the worker call running now
        self._each_sample = False  # that call sends a parcel at every sample's end (after a crash)
        self._parts: deque[Part] = deque()
        self._gen = flow.pool.submit(slot, self, samples, flow.read_config, flow.piece_frames)

    def waiting(self) -> list[Sample]:
        """The samples that have not ended, in order."""
        return [d.sample for d in self.decodes if not d.ended and not d.closed]

    def next_part(self, decode: SampleDecode) -> Part:
        """The next part of ``decode``'s sample (parts of samples closed before theirs ended are dropped)."""
        while True:
            while self._parts:
                part = self._parts.popleft()
                index = self._base + part.index
                if index == decode.index:
                    return part
                if index > decode.index:
                    raise RuntimeError(f"decode worker protocol: sample {index} came before sample {decode.index} ended")
            if self._gen is None:
                raise SampleError(failure(RuntimeError("its decode worker call ended before it did"), decode.sample))
            try:
                parcel = ray.get(next(self._gen))
            except StopIteration:
                self._gen = None
                continue
            except Exception as err:  # noqa: BLE001 - every failure is a sample's, or its worker's
                self._recover(decode, err)
                continue
            self._parts.extend(parcel.parts)

    def _recover(self, decode: SampleDecode, err: Exception) -> None:
        """After the worker call failed while ``decode`` waited: its unfinished samples go to a fresh worker.

        Raises SampleError for ``decode`` if the failure was its own: an error of the call itself (not a
        worker's death), or a second death of a worker while it surely decoded it, having been among what
        the first one may have been decoding.
        """
        pool = self.flow.pool
        later = [d.sample for d in self.decodes[decode.index + 1:]]
        if not worker_died(err):
            self._resume(decode.index + 1, later, 0, retry=False)
            raise SampleError(failure(err, decode.sample))
        # an earlier sample of this call ended: the worker was on this call when it died
        started = decode.index > self._base or pool.started(self.slot)
        # the worker was on ``decode`` for sure when it sent a parcel at every sample's end, or nothing follows
        surely = self._each_sample or decode.index == len(self.decodes) - 1
        if started and surely and decode.deaths >= 1:
            self._resume(decode.index + 1, later, 0, retry=False)
            crashed = ErrorRecord(STAGE_DECODE, "DecoderCrashed", CRASH_MESSAGE)
            raise SampleError(crashed.at(decode.sample.shard, decode.key))
        if started:  # not (yet) a sample's fault: its node went away, the OOM killer, or a first crash
            for suspect in (self.decodes[decode.index:decode.index + 1] if surely else self.decodes[decode.index:]):
                suspect.deaths += 1
        self._resume(decode.index, [decode.sample, *later], decode.delivered, retry=started)

    def _resume(self, base: int, samples: list[Sample], skip: int, retry: bool) -> None:
        self._base, self._each_sample = base, True
        self._parts.clear()
        self._gen = self.flow.pool.restart(self.slot, self, samples, self.flow.read_config, self.flow.piece_frames,
                                           skip, retry)

    def closed(self, decode: SampleDecode) -> None:
        if decode.ended:
            self.flow.pool.observe(decode.decode_seconds)
        self._open -= 1
        if self._open == 0:  # gives back the slot (replacing a worker still busy with it) and the ticket
            self._gen = None
            self.flow.pool.release(self.slot, self, complete=all(d.ended for d in self.decodes))
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
        """Hands the shard's samples out in calls of ``pool.group_size()`` consecutive samples (fewer at its end,
        or when they hold ``MAX_CALL_BYTES``); error records keep their place among them."""
        def stop() -> bool:
            return feed.abandoned or self._closing.is_set()

        pending: list = []  # samples not handed out yet, and error records read after the first of them
        for item in iter_samples(feed.url, self.read_config, self.storage_options):
            if stop():
                return
            if isinstance(item, ErrorRecord) and not pending:
                feed.put(item)
                continue
            pending.append(item)
            samples = [i for i in pending if isinstance(i, Sample)]
            if len(samples) >= self.pool.group_size() or sum(len(i.video) for i in samples) >= MAX_CALL_BYTES:
                if not self._hand_out(feed, pending, stop):
                    return
                pending = []
        if pending and not stop():
            self._hand_out(feed, pending, stop)

    def _hand_out(self, feed: ShardFeed, items: list, stop) -> bool:
        """One call for the samples among ``items``, all put in the feed in order; False if stopped first."""
        while not self._tickets.acquire(timeout=0.1):
            if stop():
                return False
        slot = self.pool.acquire(stop)
        if slot is None:
            self._tickets.release()
            return False
        if feed.decode_started_at is None:
            feed.decode_started_at = time.time()
        call = DecodeCall(self, slot, [i for i in items if isinstance(i, Sample)])
        decodes = iter(call.decodes)
        for item in items:
            feed.put(next(decodes) if isinstance(item, Sample) else item)
        return True
