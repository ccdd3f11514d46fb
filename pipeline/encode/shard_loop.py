"""The encode loop: one shard's decoded samples in, its latent rows, error rows and commit record out.

Every encoder runs this loop: the job's encoder actor (its samples decoded by decode workers), the
in-process encoder of tests and tools (``reading.decoded_samples``), and ``bench/gpu_check.py`` (clips
from memory). It needs neither Ray nor PyAV: a sample is anything with ``key``, ``pieces()`` (its
clips, or pieces of a whole-video clip, in order, with the reader's warnings about it among them;
``SampleError`` after the last good one), ``decode_seconds`` and ``close()``.

Images and videos are batched apart, each at its own batch size: a one-frame clip costs a fraction
of a video clip's encode. With a text encoder, each sample's caption is embedded once (in batches of
captions), however many clips the sample gives: its clips' rows name its row in the text table.

Clips are batched by shape in input order; whole-video clips stream through the Causal Cache piece
by piece. On a GPU the encoder never waits for a copy it does not need (``batching.py``): a batch's
latents come back while the next batch encodes. Rows are written in input order, so a re-encoded
shard is identical to the first.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..output.records import CommitRecord, ShardTimings
from ..output.shard_writer import TextRows
from ..reading.records import (LEVEL_ERROR, LEVEL_WARNING, LEVELS, SHARD_DAMAGE, STAGE_SHARD, ClipPiece, ErrorRecord,
                               SampleError)
from .batching import ClipBatcher, DeviceStats, HostLatents, PendingClip, to_video
from .canary import QualityCanary
from .rows import error_row, latent_row, text_row


class DecodedSample(Protocol):
    key: str
    decode_seconds: float

    def pieces(self) -> Iterator[ClipPiece | ErrorRecord]: ...

    def close(self) -> None: ...


class ShardUnreadable(RuntimeError):
    """The shard could not be read at all (as opposed to damaged content, which is recorded): the attempt fails
    and may be retried."""


@dataclass(frozen=True)
class EncodeSettings:
    batch_size: int  # video clips of one shape encoded together
    latent_dtype: str  # stored precision
    store_logvar: bool = False  # --store moments
    chunk_frames: int | None = None  # frames per Causal Cache chunk of a batch (None: whole clips)
    piece_frames: int | None = None  # set for whole-video clips: they arrive in pieces of this many frames
    image_batch_size: int | None = None  # images of one shape encoded together (None: batch_size)


@dataclass(frozen=True)
class ShardProgress:
    shard: str
    samples: int
    clips: int
    errors: int


@dataclass
class EncodedShard:
    """What publishing needs: the rows in input order and the commit record's figures (counts, statistics,
    quality, timings; the encoder's and the publisher's own fields are filled in by them)."""

    record: CommitRecord
    rows: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    text: TextRows | None = None  # with a text encoder


@dataclass
class _Shard:
    """One shard in the making."""

    name: str
    samples: int = 0
    rows: list[tuple[tuple[int, int], dict[str, Any]]] = field(default_factory=list)  # (sample, clip) -> row
    errors: list[dict[str, Any]] = field(default_factory=list)
    stats: DeviceStats = field(default_factory=DeviceStats)
    timings: ShardTimings = field(default_factory=ShardTimings)
    in_flight: HostLatents | None = None  # the last batch's latents, on their way to the host
    canary: Any = None  # a ShardCanary with --check-every
    text_rows: list[dict[str, Any]] = field(default_factory=list)  # caption embeddings, in input order
    captions: list[tuple[str, str]] = field(default_factory=list)  # (key, caption) waiting for the text encoder
    text_of: dict[int, int] = field(default_factory=dict)  # sample number -> its row in the text table


class ShardLoop:
    """Holds the model and the settings; ``encode`` runs one shard at a time."""

    def __init__(self, vae: Any, settings: EncodeSettings, canary: QualityCanary | None = None,
                 text: Any = None) -> None:
        """``vae``: a loaded ``wfvae.WFVAE``; ``text``: a ``pipeline.text.TextEncoder``, for captions."""
        self.vae, self.settings, self.canary, self.text = vae, settings, canary, text
        self.current: _Shard | None = None
        self._warm = False  # whether any piece has arrived yet (the first also waited for decoders to start)

    def progress(self) -> ShardProgress | None:
        shard = self.current
        return ShardProgress(shard.name, shard.samples, len(shard.rows), len(shard.errors)) if shard else None

    def encode(self, name: str, items: Iterable[ErrorRecord | DecodedSample]) -> EncodedShard:
        """The shard's items in input order: error records met while reading, and decoded samples (each closed
        here). Raises ShardUnreadable if the shard could not be read at all."""
        began = time.perf_counter()
        shard = self.current = _Shard(name, canary=self.canary.for_shard() if self.canary else None)
        batcher = ClipBatcher(self.settings.batch_size, self.settings.image_batch_size)
        try:
            for item in self._waited(shard, iter(items)):
                if isinstance(item, ErrorRecord):
                    if item.stage == STAGE_SHARD and item.error_type not in SHARD_DAMAGE:
                        raise ShardUnreadable(f"{item.shard}: {item.message}")
                    shard.errors.append(error_row(item))
                    continue
                shard.samples += 1
                try:
                    self._consume(shard, item, batcher)
                except SampleError as failed:
                    shard.errors.append(error_row(failed.record))
                finally:
                    item.close()
                    shard.timings.decode_seconds += item.decode_seconds
            for batch in batcher.drain():
                self._encode_batch(shard, batch)
            self._land(shard)
            self._embed(shard)
            quality = shard.canary.finish() if shard.canary else None  # decodes on the device
        finally:
            self.current = None
        shard.timings.encoder_seconds = time.perf_counter() - began - shard.timings.startup_seconds
        shard.rows.sort(key=lambda item: item[0])
        by_level = {level: Counter(e["error_type"] for e in shard.errors if e["level"] == level) for level in LEVELS}
        record = CommitRecord(name, samples=shard.samples, stats=shard.stats.to_stats(), canary=quality,
                              errors_by_type=dict(sorted(by_level[LEVEL_ERROR].items())),
                              warnings_by_type=dict(sorted(by_level[LEVEL_WARNING].items())), timings=shard.timings)
        return EncodedShard(record, [row for _, row in shard.rows], shard.errors, self._text_rows(shard))

    # -- waiting for the decoders -------------------------------------------------------------------
    def _waited(self, shard: _Shard, things: Iterator) -> Iterator:
        """``things``, counting the time spent waiting for each as the encoder's wait for decoding (the very
        first wait, for the decoders' processes to start, as start-up)."""
        while True:
            began = time.perf_counter()
            thing = next(things, None)
            waited = time.perf_counter() - began
            if thing is not None and isinstance(thing, ClipPiece) and not self._warm:
                self._warm = True
                shard.timings.startup_seconds = shard.timings.decode_wait_seconds + waited
                shard.timings.decode_wait_seconds = waited = 0.0
            shard.timings.decode_wait_seconds += waited
            if thing is None:
                return
            yield thing

    # -- one sample -----------------------------------------------------------------------------------
    def _consume(self, shard: _Shard, sample: DecodedSample, batcher: ClipBatcher) -> None:
        """Feeds a sample's clips to the encoder; raises SampleError if decoding failed. Clips completed before a
        failure are kept; a whole-video clip cut off by it is dropped."""
        stream = None
        for piece in self._waited(shard, sample.pieces()):
            if isinstance(piece, ErrorRecord):  # a warning: the sample goes on (a video that ends early)
                shard.errors.append(error_row(piece))
                continue
            order = (shard.samples, piece.info.clip_index)
            if self.text is not None and piece.info.caption is not None and shard.samples not in shard.text_of:
                shard.text_of[shard.samples] = len(shard.text_rows) + len(shard.captions)
                shard.captions.append((piece.info.key, piece.info.caption))
                if len(shard.captions) >= self.text.batch_size:
                    self._embed(shard)
            if self.settings.piece_frames is None or piece.info.media_type == "image":  # each piece a whole clip
                if batch := batcher.add(PendingClip(order, piece.info, piece.frames)):
                    self._encode_batch(shard, batch)
                continue
            began = time.perf_counter()
            if piece.start == 0:
                stream = self.vae.stream_encoder(self.settings.piece_frames)
            stream.feed(to_video(piece.frames, self.vae.device, self.vae.dtype))  # the stream keeps the latents
            if piece.is_last:
                self._collect(shard, [(order, piece.info)], stream.close())
                stream = None
            shard.timings.encode_seconds += time.perf_counter() - began

    def _encode_batch(self, shard: _Shard, batch: list[PendingClip]) -> None:
        began = time.perf_counter()
        video = to_video([clip.frames for clip in batch], self.vae.device, self.vae.dtype)
        posterior = self.vae.encode(video, chunk_frames=self.settings.chunk_frames)
        self._collect(shard, [(clip.order, clip.info) for clip in batch], posterior)
        if shard.canary:
            for index, clip in enumerate(batch):
                shard.canary.observe(clip.info.key, clip.info.clip_index, clip.frames, posterior.mean[index])
        shard.timings.encode_seconds += time.perf_counter() - began

    def _collect(self, shard: _Shard, items: list, posterior: Any) -> None:
        """Queues the batch's copy to the host, then turns the previous batch into rows (on a GPU the copy
        overlaps the next batch's encoding; nothing waits per clip)."""
        shard.stats.add(posterior.mean)
        latents = HostLatents(items, posterior.mean, posterior.logvar if self.settings.store_logvar else None,
                              self.settings.latent_dtype)
        self._land(shard)
        shard.in_flight = latents

    def _embed(self, shard: _Shard) -> None:
        """The captions waiting, embedded together (the text encoder batches them by length)."""
        if not shard.captions:
            return
        began = time.perf_counter()
        embeddings = self.text.encode([caption for _, caption in shard.captions])
        shard.text_rows += [text_row(key, embedding) for (key, _), embedding in zip(shard.captions, embeddings)]
        shard.captions.clear()
        shard.timings.text_seconds += time.perf_counter() - began

    def _text_rows(self, shard: _Shard) -> TextRows | None:
        if self.text is None:
            return None
        identity = self.text.identity
        return TextRows(shard.text_rows, {"text_encoder": identity.source, "text_dim": identity.hidden_size,
                                          "text_dtype": identity.dtype, "max_text_tokens": identity.max_text_tokens})

    def _land(self, shard: _Shard) -> None:
        latents, shard.in_flight = shard.in_flight, None
        if latents is None:
            return
        latents.wait()
        for index, (order, info) in enumerate(latents.items):
            logvar = latents.logvar[index] if latents.logvar is not None else None
            shard.rows.append((order, latent_row(info, shard.name, latents.mean[index], logvar,
                                                 self.settings.latent_dtype, shard.text_of.get(order[0]))))
