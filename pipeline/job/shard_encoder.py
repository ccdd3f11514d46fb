"""One shard, end to end, inside an encoder actor: read, decode (in tasks), encode, publish.

A reader thread streams the tar and starts one decode task per sample, at most
``decode_workers + batch_size`` samples ahead of the encoder, so decoding overlaps encoding
and memory stays bounded. The encoder consumes samples in order, batches clips of the same shape, and
writes the shard's rows in input order, so a re-encoded shard is identical to the first.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import ray
import torch

from wfvae import WFVAE, DiagonalGaussian

from ..output.layout import OutputLayout, shard_name
from ..output.shard_writer import publish_shard
from ..output.stats import LatentStats
from ..reading import ErrorRecord, ReadConfig, iter_samples
from ..reading.records import SHARD_DAMAGE, STAGE_SHARD, describe
from . import decode_task
from .batching import ClipBatcher, PendingClip, to_video
from .rows import error_row, latent_row

_END = object()


class ShardUnreadable(RuntimeError):
    """The shard could not be read at all (as opposed to damaged content, which is recorded)."""


class ShardEncoder:
    def __init__(self, vae: WFVAE, read_config: ReadConfig, layout: OutputLayout, *, batch_size: int,
                 chunk_frames: int | None, piece_frames: int | None, latent_dtype: str, store_logvar: bool,
                 decode_workers: int, file_metadata: dict[str, Any], record_extra: dict[str, Any]) -> None:
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
        self.progress: dict[str, Any] = {}

    # -- the shard ---------------------------------------------------------------------
    def encode_shard(self, url: str, attempt: int) -> dict[str, Any]:
        name = shard_name(url)
        started = time.perf_counter()
        self.progress = {"shard": name, "samples": 0, "clips": 0, "errors": 0, "started": time.time()}
        rows: list[tuple[tuple[int, int], dict]] = []
        errors: list[dict] = []
        stats = LatentStats()
        timings = {"decode_wait_seconds": 0.0, "encode_seconds": 0.0}
        batcher = ClipBatcher(self.batch_size)

        def emit(batch: list[PendingClip]) -> None:
            began = time.perf_counter()
            posterior = self._encode_batch(batch)
            timings["encode_seconds"] += time.perf_counter() - began
            for i, clip in enumerate(batch):
                self._add_row(rows, stats, clip.order, clip.info, name, posterior.mean[i],
                              posterior.logvar[i] if self.store_logvar else None)

        # Samples submitted ahead of the encoder: the running decodes plus one batch waiting, so a
        # batch is ready when the encoder finishes the previous one; memory stays bounded.
        work: queue.Queue = queue.Queue(maxsize=self.decode_workers + self.batch_size)
        stop = threading.Event()
        reader = threading.Thread(target=self._read, args=(url, work, stop), name=f"read-{name}", daemon=True)
        reader.start()
        try:
            sample_number = 0
            while True:
                began = time.perf_counter()
                item = work.get()
                timings["decode_wait_seconds"] += time.perf_counter() - began
                if item is _END:
                    break
                if isinstance(item, ErrorRecord):
                    if item.stage == STAGE_SHARD and item.error_type not in SHARD_DAMAGE:
                        raise ShardUnreadable(f"{url}: {item.message}")  # fail the attempt: it may be retried
                    errors.append(error_row(name, item.key, item.stage, item.error_type, item.message))
                    self.progress["errors"] = len(errors)
                    continue
                key, pieces = item
                sample_number += 1
                self.progress["samples"] = sample_number
                problem = self._consume(sample_number, pieces, batcher, emit, rows, stats, name, timings)
                if problem is not None:
                    errors.append(error_row(name, key, *problem))
                    self.progress["errors"] = len(errors)
            for batch in batcher.drain():
                emit(batch)
        finally:
            stop.set()
            reader.join(timeout=30)
        rows.sort(key=lambda item: item[0])
        record = {**self.record_extra, "url": url, "attempt": attempt, "samples": sample_number,
                  "stats": stats.to_dict(), "errors_by_type": dict(Counter(e["error_type"] for e in errors)),
                  "timings": {k: round(v, 3) for k, v in
                              {**timings, "total_seconds": time.perf_counter() - started}.items()}}
        return publish_shard(self.layout, name, [row for _, row in rows], errors, self.file_metadata, record)

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
    def _consume(self, sample_number: int, pieces, batcher: ClipBatcher, emit: Callable, rows: list,
                 stats: LatentStats, shard: str, timings: dict) -> tuple[str, str, str] | None:
        """Feeds a sample's decoded clips to the encoder; returns an error triple if decoding failed.

        Clips completed before a failure are kept; a whole-video clip cut off by it is dropped.
        With ``piece_frames`` unset each piece is a whole clip and joins a batch.
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
            timings["decode_wait_seconds"] += time.perf_counter() - began
            order = (sample_number, piece.info.clip_index)
            if self.piece_frames is None:
                batch = batcher.add(PendingClip(order, piece.info, piece.frames))
                if batch:
                    emit(batch)
                continue
            began = time.perf_counter()
            if piece.start == 0:
                stream, parts = self.vae.stream_encoder(self.piece_frames), []
            parts.append(stream.push(to_video(piece.frames, self.vae.device, self.vae.dtype)))
            if piece.is_last:
                parts.append(stream.close())
                posterior = DiagonalGaussian.cat(parts)
                self._add_row(rows, stats, order, piece.info, shard, posterior.mean[0],
                              posterior.logvar[0] if self.store_logvar else None)
                stream, parts = None, []
            timings["encode_seconds"] += time.perf_counter() - began

    def _encode_batch(self, batch: list[PendingClip]) -> DiagonalGaussian:
        video = to_video([clip.frames for clip in batch], self.vae.device, self.vae.dtype)
        return self.vae.encode(video, chunk_frames=self.chunk_frames)

    def _add_row(self, rows: list, stats: LatentStats, order: tuple[int, int], info: Any, shard: str,
                 mean: torch.Tensor, logvar: torch.Tensor | None) -> None:
        stats.add(mean.float())
        rows.append((order, latent_row(info, shard, mean, logvar, self.latent_dtype)))
        self.progress["clips"] = len(rows)
