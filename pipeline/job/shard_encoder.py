"""One shard, end to end, inside an encoder actor: read and decode (dataflow), encode, publish.

``encode_shard`` may be called for the next shards while the current one still runs (the actor
takes ``SHARDS_IN_FLIGHT`` shard calls at a time): the next shard is then read and decoded while the current
one's last batches encode, and the current one is published (Parquet, upload, commit marker)
on its own call's thread while the encoder goes on with the next. The encoder thread waits
only for decoded clips, never for I/O. Clips are batched by shape in input order and the
shard's rows are written in input order, so a re-encoded shard is identical to the first.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from wfvae import WFVAE, DiagonalGaussian

from ..output.layout import OutputLayout, shard_name
from ..output.records import CommitRecord
from ..output.shard_writer import publish_shard
from ..reading import ErrorRecord, SampleError
from ..reading.records import SHARD_DAMAGE, STAGE_SHARD
from .balance import balance
from .batching import ClipBatcher, DeviceStats, HostLatents, PendingClip, to_video
from .canary import QualityCanary, ShardCanary
from .dataflow import Dataflow, SampleDecode
from .metrics import JobMetrics
from .rows import error_row, latent_row


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
        self.stats = DeviceStats()
        self.timings = {"decode_wait_seconds": 0.0, "encode_seconds": 0.0, "decode_seconds": 0.0}
        self.started = time.perf_counter()
        self.canary: ShardCanary | None = None  # with --check-every

    def add_error(self, record: ErrorRecord) -> None:
        self.errors.append(error_row(record))

    def progress(self) -> dict[str, Any]:
        return {"shard": self.name, "samples": self.samples, "clips": len(self.rows), "errors": len(self.errors)}


class ShardEncoder:
    def __init__(self, vae: WFVAE, dataflow: Dataflow, layout: OutputLayout, *, batch_size: int,
                 chunk_frames: int | None, latent_dtype: str, store_logvar: bool, file_metadata: dict[str, Any],
                 record_extra: dict[str, Any], canary: QualityCanary | None = None,
                 metrics: JobMetrics | None = None) -> None:
        """``dataflow``: the shards' decoding (made before the model loads, so its workers start meanwhile)."""
        self.vae = vae
        self.dataflow = dataflow
        self.layout = layout
        self.batch_size = batch_size
        self.chunk_frames = chunk_frames
        self.piece_frames = dataflow.piece_frames  # set for whole-video clips, which stream through the Causal Cache
        self.latent_dtype = latent_dtype
        self.store_logvar = store_logvar
        self.file_metadata = file_metadata
        self.record_extra = record_extra
        self.canary = canary
        self.metrics = metrics
        self.current: _ShardResults | None = None
        self._in_flight: HostLatents | None = None  # the last batch's latents, on their way to the host
        self._warm = False  # whether any decoded clip has arrived yet (before that: workers starting)

    def progress(self) -> dict[str, Any]:
        current = self.current
        waiting = self.dataflow.pool.waiting_for_cpu()
        return {**(current.progress() if current else {}), **({"workers_waiting_for_cpu": waiting} if waiting else {})}

    def close(self) -> None:
        self.dataflow.close()

    # -- the shard ---------------------------------------------------------------------
    def encode_shard(self, url: str, attempt: int, order: int | None = None) -> dict[str, Any]:
        """``order``: the call's place among those sent to this encoder (shards open in that order)."""
        shard = _ShardResults(url)
        shard.canary = self.canary.for_shard() if self.canary else None
        feed = self.dataflow.open(url, order)  # reading and decoding start now, or once the shard before is handed out
        with self.dataflow.turn(feed):
            began = time.perf_counter()
            encoding_started_at = time.time()
            shard.timings["turn_wait_seconds"] = began - shard.started
            self.current = shard
            try:
                self._encode(shard, feed)
            except BaseException:
                self._in_flight = None  # a failed shard's last latents must not land in the next one
                raise
            quality = {"canary": shard.canary.finish().to_dict()} if shard.canary else {}  # decodes on the device
            # the encoder's time on the shard, less the wait for decode workers to start (once per encoder)
            shard.timings["encoder_seconds"] = time.perf_counter() - began - shard.timings.get("startup_seconds", 0.0)
        # The encoder's turn is over: the next shard encodes while this one is published here.
        shard.rows.sort(key=lambda item: item[0])
        timings = {**shard.timings, "total_seconds": time.perf_counter() - shard.started}
        record = CommitRecord(shard.name, url=url, attempt=attempt, samples=shard.samples,
                              stats=shard.stats.to_stats(),
                              errors_by_type=dict(Counter(e["error_type"] for e in shard.errors)), **quality,
                              # when this shard's decoding and encoding started and its encoding ended
                              decode_started_at=feed.decode_started_at, encoding_started_at=encoding_started_at,
                              encoded_at=time.time(),
                              balance=balance(timings["encoder_seconds"], timings["decode_wait_seconds"],
                                              timings["decode_seconds"], **self.dataflow.pool.placed()),
                              decoding={"calls": feed.calls, "retried": feed.retried},
                              timings={k: round(v, 3) for k, v in timings.items()}, **self.record_extra)
        committed = publish_shard(self.layout, shard.name, [row for _, row in shard.rows], shard.errors,
                                  self.file_metadata, record)
        if self.metrics:
            self.metrics.shard_committed(committed, shard.errors)
        return committed.to_dict()  # as stored in _committed/

    def _encode(self, shard: _ShardResults, feed) -> None:
        batcher = ClipBatcher(self.batch_size)
        while True:
            began = time.perf_counter()
            item = feed.get()
            shard.timings["decode_wait_seconds"] += time.perf_counter() - began
            if item is None:
                break
            if isinstance(item, ErrorRecord):
                if item.stage == STAGE_SHARD and item.error_type not in SHARD_DAMAGE:
                    raise ShardUnreadable(f"{feed.url}: {item.message}")  # fail the attempt: it may be retried
                shard.add_error(item)
                continue
            shard.samples += 1
            try:
                self._consume(shard, item, batcher)
            except SampleError as failed:
                shard.add_error(failed.record)
            finally:
                item.close()
                shard.timings["decode_seconds"] += item.decode_seconds
        for batch in batcher.drain():
            self._encode_batch(shard, batch)
        self._land(shard)

    # -- one sample --------------------------------------------------------------------
    def _consume(self, shard: _ShardResults, sample: SampleDecode, batcher: ClipBatcher) -> None:
        """Feeds a sample's decoded clips to the encoder; raises SampleError if decoding failed.

        Clips completed before a failure are kept; a whole-video clip cut off by it is dropped.
        Without ``piece_frames`` each piece is a whole clip and joins a batch; with it, the pieces
        of a clip stream through the Causal Cache.
        """
        stream = None
        pieces = sample.pieces()
        while True:
            began = time.perf_counter()
            piece = next(pieces, None)
            waited = time.perf_counter() - began
            if piece is not None and not self._warm:
                self._warm = True  # the first clip also waited for the workers' processes to start
                shard.timings["startup_seconds"] = shard.timings["decode_wait_seconds"] + waited
                shard.timings["decode_wait_seconds"] = 0.0
                waited = 0.0
            shard.timings["decode_wait_seconds"] += waited
            if piece is None:
                return
            order = (shard.samples, piece.info.clip_index)
            if self.piece_frames is None:
                if batch := batcher.add(PendingClip(order, piece.info, piece.frames)):
                    self._encode_batch(shard, batch)
                continue
            began = time.perf_counter()
            if piece.start == 0:
                stream = self.vae.stream_encoder(self.piece_frames)
            stream.feed(to_video(piece.frames, self.vae.device, self.vae.dtype))  # the stream keeps the latents
            if piece.is_last:
                self._collect(shard, [(order, piece.info)], stream.close())
                stream = None
            shard.timings["encode_seconds"] += time.perf_counter() - began

    def _encode_batch(self, shard: _ShardResults, batch: list[PendingClip]) -> None:
        began = time.perf_counter()
        video = to_video([clip.frames for clip in batch], self.vae.device, self.vae.dtype)
        posterior = self.vae.encode(video, chunk_frames=self.chunk_frames)
        self._collect(shard, [(clip.order, clip.info) for clip in batch], posterior)
        if shard.canary:
            for index, clip in enumerate(batch):
                shard.canary.observe(clip.info.key, clip.info.clip_index, clip.frames, posterior.mean[index])
        shard.timings["encode_seconds"] += time.perf_counter() - began

    def _collect(self, shard: _ShardResults, items: list, posterior: DiagonalGaussian) -> None:
        """Queues the batch's copy to the host, then turns the previous batch into rows (on a GPU the
        copy overlaps the next batch's encoding; nothing waits per clip)."""
        shard.stats.add(posterior.mean)
        latents = HostLatents(items, posterior.mean, posterior.logvar if self.store_logvar else None,
                              self.latent_dtype)
        self._land(shard)
        self._in_flight = latents

    def _land(self, shard: _ShardResults) -> None:
        latents, self._in_flight = self._in_flight, None
        if latents is None:
            return
        latents.wait()
        for index, (order, info) in enumerate(latents.items):
            logvar = latents.logvar[index] if latents.logvar is not None else None
            shard.rows.append((order, latent_row(info, shard.name, latents.mean[index], logvar, self.latent_dtype)))
