"""Read a shard in-process: samples, then their clips. For tools, tests and small jobs.

The Ray job splits the same two steps across processes instead: `iter_samples`
on a reader, `decode_clips` in CPU workers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from .config import ReadConfig
from .decode import decode_clips, sample_clips
from .records import STAGE_SHARD, Clip, ClipPiece, ErrorRecord, Sample
from .samples import iter_samples


def read_shard(shard_url: str, config: ReadConfig, storage_options: dict | None = None) -> Iterator[Clip | ErrorRecord]:
    """Every clip of every sample of a shard, with ErrorRecords for what failed. Never raises."""
    try:
        for item in iter_samples(shard_url, config, storage_options):
            if isinstance(item, ErrorRecord):
                yield item
            else:
                yield from sample_clips(item, config)
    except Exception as exc:  # noqa: BLE001 - a bug here must not stop a job either
        yield ErrorRecord.of(exc, STAGE_SHARD, shard_url)


class LocalDecode:
    """A sample decoded in this process, as the encode loop reads a sample (``pipeline.encode.shard_loop``)."""

    def __init__(self, sample: Sample, config: ReadConfig, piece_frames: int | None = None) -> None:
        self.sample, self.config, self.piece_frames = sample, config, piece_frames
        self.key = sample.key
        self.decode_seconds = 0.0

    def pieces(self) -> Iterator[ClipPiece | ErrorRecord]:
        pieces = decode_clips(self.sample, self.config, self.piece_frames)
        while True:
            began = time.perf_counter()
            piece = next(pieces, None)  # a SampleError goes to the caller, after the good pieces
            self.decode_seconds += time.perf_counter() - began
            if piece is None:
                return
            yield piece

    def close(self) -> None:
        pass


def decoded_samples(shard_url: str, config: ReadConfig, storage_options: dict | None = None,
                    piece_frames: int | None = None) -> Iterator[ErrorRecord | LocalDecode]:
    """A shard's samples, decoded here on demand, with the error records met while reading it: what an encode
    loop takes from a job's decode workers."""
    for item in iter_samples(shard_url, config, storage_options):
        yield item if isinstance(item, ErrorRecord) else LocalDecode(item, config, piece_frames)
