"""The plain, picklable records that cross process boundaries.

Ray ships these between CPU workers and GPU actors, so they are dataclasses of
builtins and numpy arrays only. A problem is never an exception that escapes a
reader: it becomes an `ErrorRecord` the job can write to its error table.
"""

from __future__ import annotations

from dataclasses import dataclass

import re

import numpy as np

_DECORD_PREFIX = re.compile(r"^((\[[\d:]+\] )?\S+\.(cc|h|cpp):\d+: )+")

# Stages, in the order a sample goes through them.
STAGE_SHARD = "shard"  # opening or reading the tar stream
STAGE_SAMPLE = "sample"  # assembling a sample from its tar members
STAGE_DECODE = "decode"  # opening or decoding the video
STAGE_CLIP = "clip"  # choosing clips (e.g. the video is too short)

# Shard errors that describe the file's content (deterministic: reading it again gives the
# same result). Any other shard error is a failure to read it at all (missing, no access,
# network), which a retry may cure.
SHARD_DAMAGE = ("TruncatedShard", "CorruptShard")


@dataclass
class Sample:
    """One WebDataset sample: the files of a tar that share a key."""

    shard: str
    key: str
    video: bytes
    video_ext: str
    caption: str | None
    meta: str | None
    """The sample's json part as text, or None."""


@dataclass
class ClipInfo:
    """Where a clip came from and what it is; no pixels."""

    shard: str
    key: str
    clip_index: int
    frame_indices: list[int]
    """Source frame index (presentation order) of every output frame."""
    timestamps: list[float]
    """Source presentation time (seconds) of every output frame."""
    source_fps: float
    """Frames per second of the source, from its timestamps (count / duration)."""
    source_height: int
    """Display size of the source: rotation and pixel aspect ratio applied."""
    source_width: int
    source_num_frames: int
    height: int
    width: int
    num_frames: int
    fps: float
    """Frame rate of the clip: the requested fps, or `source_fps`."""
    caption: str | None
    meta: str | None
    rotation: int = 0
    """Counter-clockwise rotation (0, 90, 180, 270) applied from the file's display matrix."""


@dataclass
class ClipPiece:
    """A run of consecutive frames of one clip, for streaming encoders."""

    info: ClipInfo
    frames: np.ndarray
    """(n, H, W, 3) uint8 RGB, C-contiguous."""
    start: int
    """Index of this piece's first frame within the clip."""
    is_last: bool


@dataclass
class Clip:
    """A whole clip."""

    info: ClipInfo
    frames: np.ndarray
    """(T, H, W, 3) uint8 RGB, C-contiguous."""


@dataclass
class ErrorRecord:
    """Something that could not be read, and why. The job writes these to a table."""

    shard: str
    key: str | None
    """The sample's key, or None for a problem with the shard as a whole."""
    stage: str
    """"shard", "sample", "decode" or "clip"."""
    error_type: str
    message: str
    samples_read: int | None = None
    """For shard errors: how many samples were read from the shard before the problem."""


class SampleError(Exception):
    """A sample that cannot give (more) clips. Raised by `decode_clips`."""

    def __init__(self, stage: str, error_type: str, message: str):
        super().__init__(stage, error_type, message)  # args keep it picklable
        self.stage = stage
        self.error_type = error_type
        self.message = message

    def __str__(self) -> str:
        return f"[{self.stage}] {self.error_type}: {self.message}"

    def to_record(self, shard: str, key: str | None) -> ErrorRecord:
        return ErrorRecord(shard=shard, key=key, stage=self.stage, error_type=self.error_type, message=self.message)


def describe(exc: BaseException, limit: int = 500) -> str:
    """A one-line message for an exception raised by a library (class name and first line)."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    # decord prefixes its messages with a timestamp and a source location; keep what follows.
    first = _DECORD_PREFIX.sub("", first)
    message = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return message[:limit]
