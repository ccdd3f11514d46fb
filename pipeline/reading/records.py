"""The plain, picklable records that cross process boundaries.

Ray ships these between CPU workers and GPU actors, so they are dataclasses of
builtins and numpy arrays only. A problem has one shape from where it is met to
the job's error table: an `ErrorRecord`. Readers yield it; code that must stop
raises it inside a `SampleError`, which crosses Ray as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import re

import numpy as np

_DECORD_PREFIX = re.compile(r"^((\[[\d:]+\] )?\S+\.(cc|h|cpp):\d+: )+")

# Stages, in the order a sample goes through them.
STAGE_SHARD = "shard"  # opening or reading the tar stream
STAGE_SAMPLE = "sample"  # assembling a sample from its tar members
STAGE_DECODE = "decode"  # opening or decoding the video or image
STAGE_CLIP = "clip"  # choosing clips (e.g. the video is too short)

# What a sample's media part is: the `media_type` of samples, clips and output rows.
MEDIA_VIDEO = "video"
MEDIA_IMAGE = "image"
MEDIA_TYPES = (MEDIA_IMAGE, MEDIA_VIDEO)

# Shard errors that describe the file's content (deterministic: reading it again gives the
# same result). Any other shard error is a failure to read it at all (missing, no access,
# network), which a retry may cure.
SHARD_DAMAGE = ("TruncatedShard", "CorruptShard")

# How bad a problem is. An error ends what it is met in (a sample, a shard); a warning says that what
# was read is less than the file claims, and reading goes on (`EndedEarly`).
LEVEL_ERROR = "error"
LEVEL_WARNING = "warning"
LEVELS = (LEVEL_ERROR, LEVEL_WARNING)


@dataclass
class Sample:
    """One WebDataset sample: the files of a tar that share a key, its media part picked out."""

    shard: str
    key: str
    media: bytes
    """The bytes of the video or image part."""
    media_ext: str
    """That part's extension ("mp4", "jpg")."""
    caption: str | None
    meta: str | None
    """The sample's json part as text, or None."""
    media_type: str = MEDIA_VIDEO
    """"video" or "image": which reader decodes `media` (`samples.make_sample` decides it from the extension;
    the default is what every sample was before images were read)."""
    parts: tuple[str, ...] = ()
    """The names of all the sample's parts, sorted (("jpg", "json", "txt")); empty for a sample built by hand."""

    def __post_init__(self) -> None:
        if self.media_type not in MEDIA_TYPES:
            raise ValueError(f"media_type must be one of {MEDIA_TYPES}, got {self.media_type!r}")


@dataclass
class ClipInfo:
    """Where a clip came from and what it is; no pixels."""

    shard: str
    key: str
    media_type: str
    """"video" or "image" (an image is one clip of one frame)."""
    clip_index: int
    frame_indices: list[int]
    """Source frame index (presentation order) of every output frame."""
    timestamps: list[float]
    """Source presentation time (seconds) of every output frame."""
    source_fps: float | None
    """Frames per second of the source: count / duration (see `source_frames_estimated`); None for an image."""
    source_height: int
    """Display size of the source: rotation and pixel aspect ratio (an image's EXIF orientation) applied."""
    source_width: int
    source_num_frames: int
    height: int
    width: int
    num_frames: int
    fps: float | None
    """Frame rate of the clip: the requested fps, or `source_fps`; None for an image (it has no frame rate)."""
    caption: str | None
    meta: str | None
    rotation: int = 0
    """Counter-clockwise rotation (0, 90, 180, 270) applied from the file's display matrix (an image's EXIF
    orientation; one that also mirrors says so in `probe.Geometry.mirrored`)."""
    source_frames_estimated: bool = False
    """`source_num_frames` and `source_fps` are the container header's estimate, not counted from
    every frame's timestamp: a first clip stops reading the video early (`probe.header_timing`)."""
    source_ended_early: bool | None = None
    """The video's frames stop before its header says (a cut file): the clips come from the frames it
    holds, and its sample has an `EndedEarly` warning (`early_end.py`). None: not known (a first clip
    of a file whose header has no per-frame index, read only as far as the clip)."""


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


@dataclass(frozen=True)
class ErrorRecord:
    """Something that could not be read, and why: what readers yield, what a `SampleError` carries and
    what the job's error row is made of (`pipeline.encode.rows.error_row`). A warning (`level`) is
    yielded beside what was read and ends nothing; it is never raised.

    Code deep in decoding meets a problem before it knows whose it is: it leaves `shard` and `key`
    unset and the reader that knows the sample fills them in (`at`).
    """

    stage: str
    """"shard", "sample", "decode" or "clip"."""
    error_type: str
    message: str
    shard: str | None = None
    """The shard's URL."""
    key: str | None = None
    """The sample's key, or None for a problem with the shard as a whole."""
    samples_read: int | None = None
    """For shard errors: how many samples were read from the shard before the problem."""
    level: str = LEVEL_ERROR
    """"error" (what it was met in ended) or "warning" (reading went on: see `LEVELS`)."""

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"an ErrorRecord's level is one of {LEVELS}, got {self.level!r}")

    def at(self, shard: str, key: str | None) -> ErrorRecord:
        """The same problem, placed: the shard and sample it belongs to."""
        return replace(self, shard=shard, key=key)

    @classmethod
    def of(cls, exc: BaseException, stage: str, shard: str, key: str | None = None) -> ErrorRecord:
        """The record of an exception nobody foresaw: its class names the error type."""
        return cls(stage, type(cause_of(exc)).__name__, describe(exc), shard=shard, key=key)


class SampleError(Exception):
    """Reading stopped at a sample: carries its ErrorRecord (picklable, so it crosses Ray intact).

    Raised by `decode_clips` for a video or image that cannot give (more) clips, and by `tar_members` for a
    damaged tar (stage "shard"; the record's key is the sample the damage cut into, if any).
    """

    def __init__(self, record: ErrorRecord):
        super().__init__(record)  # args keep it picklable
        self.record = record

    def __str__(self) -> str:
        return f"[{self.record.stage}] {self.record.error_type}: {self.record.message}"


def cause_of(exc: BaseException) -> BaseException:
    """The exception a Ray task raised, rather than Ray's wrapper around it (`RayTaskError.cause`)."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


def describe(exc: BaseException, limit: int = 500) -> str:
    """The one line that stands for an exception anywhere in a message: class name and first line."""
    exc = cause_of(exc)
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    # decord prefixes its messages with a timestamp and a source location; keep what follows.
    first = _DECORD_PREFIX.sub("", first)
    message = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return message[:limit]
