"""One shard, end to end, inside an encoder actor: read, decode (in tasks), encode, publish.

A reader thread streams the tar and starts one decode task per sample, at most
``decode_workers + batch_size`` samples ahead of the encoder, so decoding overlaps encoding
and memory stays bounded. The encoder consumes samples in order, batches clips of the same
shape, and writes the shard's rows in input order, so a re-encoded shard is identical to
the first.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from typing import Any

import ray

from wfvae import WFVAE, DiagonalGaussian

from ..output.layout import OutputLayout, shard_name
from ..output.shard_writer import publish_shard
from ..output.stats import LatentStats
from ..reading import ErrorRecord, ReadConfig, iter_samples
from ..reading.records import SHARD_DAMAGE, STAGE_SHARD, describe
from . import decode_task
from .batching import ClipBatcher, PendingClip, to_video
from .canary import QualityCanary
from .metrics import JobMetrics
from .rows import error_row, latent_row

_END = object()


class ShardUnreadable(RuntimeError):
    """The shard could not be read at all (as opposed to damaged content, which is recorded)."""


class _ShardResults:
    """What one attempt at a shard has produced so far."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.name = shard_name(url)
        self.samples = 0
        self.rows: list[tuple[tuple[int, int], dict]] = []  # (sample number, clip index) -> row
        self.errors: list[dict] = []
        self.stats = LatentStats()
        self.timings = {"decode_wait_seconds": 0.0, "encode_seconds": 0.0}
        self.started = time.perf_counter()
        self.canary = None  # a ShardCanary, with --check-every

    def add_error(self, key: str | None, stage: str, error_type: str, message: str) -> None:
        self.errors.append(error_row(self.name, key, stage, error_type, message))

    def progress(self) -> dict[str, Any]:
        return {"shard": self.name, "samples": self.samples, "clips": len(self.rows), "errors": len(self.errors)}


class ShardEncoder:
    def __init__(self, vae: WFVAE, read_config: ReadConfig, layout: OutputLayout, *, batch_size: int,
                 chunk_frames: int | None, piece_frames: int | None, latent_dtype: str, store_logvar: bool,
                 decode_workers: int, file_metadata: dict[str, Any], record_extra: dict[str, Any],
                 canary: QualityCanary | None = None, metrics: JobMetrics | None = None) -> None:
        self.vae = vae
        self.read_config = read_config
        self.layout = layout
        self.batch_size = batch_size
        self.chunk_frames = chunk_frames
        self.piece_frames = piece_frames  # set for whole-video clips, which stream through the Causal Cache
        self.latent_dtype = latent_dtype
        self.store_logvar = store_logvar
        self.decode_workers = decode_workers
        self.file_metadata = file_metadata
        self.record_extra = record_extra
        self.canary = canary
        self.metrics = metrics
        self.current: _ShardResults | None = None

    def progress(self) -> dict[str, Any]:
        current = self.current
        return current.progress() if current else {}

    # -- the shard ---------------------------------------------------------------------
    def encode_shard(self, url: str, attempt: int) -> dict[str, Any]:
        shard = self.current = _ShardResults(url)
        shard.canary = self.canary.for_shard() if self.canary else None
        batcher = ClipBatcher(self.batch_size)
        # Samples submitted ahead of the encoder: the running decodes plus one batch waiting, so a
        # batch is ready when the encoder finishes the previous one; memory stays bounded.
        work: queue.Queue = queue.Queue(maxsize=self.decode_workers + self.batch_size)
        stop = threading.Event()
        reader = threading.Thread(target=self._read, args=(url, work, stop), name=f"read-{shard.name}", daemon=True)
        reader.start()
        try:
            while (item := self._next(work, shard)) is not _END:
                if isinstance(item, ErrorRecord):
                    if item.stage == STAGE_SHARD and item.error_type not in SHARD_DAMAGE:
                        raise ShardUnreadable(f"{url}: {item.message}")  # fail the attempt: it may be retried
                    shard.add_error(item.key, item.stage, item.error_type, item.message)
                    continue
                key, pieces = item
                shard.samples += 1
                problem = self._consume(shard, pieces, batcher)
                if problem is not None:
                    shard.add_error(key, *problem)
            for batch in batcher.drain():
                self._encode_batch(shard, batch)
        finally:
            stop.set()
            reader.join(timeout=30)
        shard.rows.sort(key=lambda item: item[0])
        record = {**self.record_extra, "url": url, "attempt": attempt, "samples": shard.samples,
                  "stats": shard.stats.to_dict(),
                  "errors_by_type": dict(Counter(e["error_type"] for e in shard.errors)),
                  **({"canary": shard.canary.finish().to_dict()} if shard.canary else {}),
                  "timings": {k: round(v, 3) for k, v in
                              {**shard.timings, "total_seconds": time.perf_counter() - shard.started}.items()}}
        committed = publish_shard(self.layout, shard.name, [row for _, row in shard.rows], shard.errors,
                                  self.file_metadata, record)
        if self.metrics:
            self.metrics.shard_committed(committed, shard.errors)
        return committed

    @staticmethod
    def _next(work: queue.Queue, shard: _ShardResults) -> Any:
        began = time.perf_counter()
        item = work.get()
        shard.timings["decode_wait_seconds"] += time.perf_counter() - began
        return item

    # -- reading (thread) --------------------------------------------------------------
    def _read(self, url: str, work: queue.Queue, stop: threading.Event) -> None:
        def put(item: Any) -> bool:
            while not stop.is_set():
                try:
                    work.put(item, timeout=0.5)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            for item in iter_samples(url, self.read_config, self.layout.storage_options):
                if isinstance(item, ErrorRecord):
                    if not put(item):
                        return
                elif not put((item.key, decode_task.submit(item, self.read_config, self.piece_frames))):
                    return
        except Exception as err:  # iter_samples does not raise; Ray submission might
            put(ErrorRecord(url, None, STAGE_SHARD, type(err).__name__, describe(err)))
        finally:
            put(_END)

    # -- one sample --------------------------------------------------------------------
    def _consume(self, shard: _ShardResults, pieces, batcher: ClipBatcher) -> tuple[str, str, str] | None:
        """Feeds a sample's decoded clips to the encoder; returns (stage, type, message) if decoding failed.

        Clips completed before a failure are kept; a whole-video clip cut off by it is dropped.
        Without ``piece_frames`` each piece is a whole clip and joins a batch; with it, the pieces
        of a clip stream through the Causal Cache.
        """
        stream, parts = None, []
        refs = iter(pieces)
        while True:
            began = time.perf_counter()
            try:  # only fetching decoded pieces can fail for the sample; encoding errors fail the shard
                piece = ray.get(next(refs))
            except StopIteration:
                return None
            except Exception as err:
                return decode_task.failure(err)
            shard.timings["decode_wait_seconds"] += time.perf_counter() - began
            order = (shard.samples, piece.info.clip_index)
            if self.piece_frames is None:
                if batch := batcher.add(PendingClip(order, piece.info, piece.frames)):
                    self._encode_batch(shard, batch)
                continue
            began = time.perf_counter()
            if piece.start == 0:
                stream, parts = self.vae.stream_encoder(self.piece_frames), []
            parts.append(stream.push(to_video(piece.frames, self.vae.device, self.vae.dtype)))
            if piece.is_last:
                parts.append(stream.close())
                self._add_row(shard, order, piece.info, DiagonalGaussian.cat(parts), 0)
                stream, parts = None, []
            shard.timings["encode_seconds"] += time.perf_counter() - began

    def _encode_batch(self, shard: _ShardResults, batch: list[PendingClip]) -> None:
        began = time.perf_counter()
        video = to_video([clip.frames for clip in batch], self.vae.device, self.vae.dtype)
        posterior = self.vae.encode(video, chunk_frames=self.chunk_frames)
        shard.timings["encode_seconds"] += time.perf_counter() - began
        for index, clip in enumerate(batch):
            self._add_row(shard, clip.order, clip.info, posterior, index)
            if shard.canary:
                shard.canary.observe(clip.info.key, clip.info.clip_index, clip.frames, posterior.mean[index])

    def _add_row(self, shard: _ShardResults, order: tuple[int, int], info: Any, posterior: DiagonalGaussian,
                 index: int) -> None:
        mean = posterior.mean[index]
        logvar = posterior.logvar[index] if self.store_logvar else None
        shard.stats.add(mean.float())
        shard.rows.append((order, latent_row(info, shard.name, mean, logvar, self.latent_dtype)))
