"""What to read and how: one frozen, picklable config checked up front.

Every mistake a user can make here would otherwise surface much later as odd
clips or a crashed worker, so `ReadConfig.__post_init__` rejects it at once
with a message that says what is allowed. The error carries the setting's name, so the job
can report it under its own flag.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

CLIP_POLICIES = ("first", "uniform:N", "all", "whole")
SHORT_VIDEO_POLICIES = ("skip", "shorten")
DEFAULT_VIDEO_EXTENSIONS = ("mp4", "mkv", "webm", "mov", "avi")

DECODERS = ("pyav", "decord")

_UNIFORM = re.compile(r"^uniform:(\d+)$")
_PART_NAME = re.compile(r"^[a-z0-9_][a-z0-9_.-]*$")


class ReadConfigError(ValueError):
    """An invalid read setting; ``field`` names it, so a caller can name its own flag for it."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class ReadConfig:
    """How shards are read, which clips are taken and what size they come out.

    Exactly one of `resolution` and `buckets` must be set. Sizes are (height, width).
    """

    num_frames: int = 17
    """Frames per clip: 1 + a multiple of `temporal_compression` (e.g. 17, 33)."""
    temporal_compression: int = 4
    """The model's temporal compression factor (4 or 8 for WF-VAE)."""
    fps: float | None = None
    """Output frame rate, sampled by timestamps; None keeps the source's frames."""
    clips: str = "first"
    """"first", "uniform:N" (N evenly spread clips), "all" (non-overlapping), "whole"."""
    max_frames: int | None = None
    """Cap on the frame count in "whole" mode (None: the whole video)."""
    short_videos: str = "skip"
    """A video shorter than one clip: "skip" it (error record) or "shorten" the clip."""
    resolution: tuple[int, int] | None = None
    """Fixed output (H, W): resize to cover, then center-crop."""
    buckets: tuple[tuple[int, int], ...] | None = None
    """Aspect-ratio buckets (H, W): the nearest log-aspect wins, then resize and crop."""
    video_extensions: tuple[str, ...] = DEFAULT_VIDEO_EXTENSIONS
    """Sample parts taken as the video, in order of preference."""
    caption_key: str | None = "txt"
    """Where the caption is: a part name ("txt") or a field of the json part ("json:caption",
    dotted for nested fields, "json:meta.caption"); None for no caption."""
    meta_key: str = "json"
    """The part kept as the sample's metadata text."""
    shard_block_size: int = 8 * 2**20
    """Bytes per ranged read when streaming a shard from an object store."""
    decode_threads: int = 1
    """Decoder threads per video (0 = FFmpeg's choice). One per CPU worker is the intent."""
    resize_at_decode: bool = True
    """Let the decoder scale while converting to RGB (fast); False decodes at source
    size and resizes with torch (antialiased bilinear)."""
    tmp_dir: str | None = None
    """Where videos are written for decoding (None: the system default; /dev/shm is faster)."""
    decoder: str = "pyav"
    """"pyav" (one pass, every codec FFmpeg decodes; measured fastest) or "decord" (its index and
    `get_batch` for "first" and "uniform:N"; "all" and "whole" are read front to back with PyAV either way)."""

    def __post_init__(self) -> None:
        _check_int("temporal_compression", self.temporal_compression, minimum=1)
        _check_int("num_frames", self.num_frames, minimum=1)
        tc = self.temporal_compression
        if (self.num_frames - 1) % tc != 0:
            raise ReadConfigError(
                "num_frames", f"num_frames must be 1 + a multiple of temporal_compression={tc} "
                f"(e.g. {1 + tc}, {1 + 4 * tc}, {1 + 8 * tc}), got {self.num_frames}"
            )
        if self.fps is not None:
            if isinstance(self.fps, bool) or not isinstance(self.fps, (int, float)) or \
                    not (math.isfinite(self.fps) and self.fps > 0):
                raise ReadConfigError("fps", f"fps must be a positive number or None, got {self.fps!r}")
        _ = self.clip_policy  # parses and validates `clips`
        if self.max_frames is not None:
            _check_int("max_frames", self.max_frames, minimum=1)
            if self.clip_policy != "whole":
                raise ReadConfigError("max_frames", f"max_frames only applies to clips='whole', not clips={self.clips!r}")
            if self.max_frames < self.num_frames:
                raise ReadConfigError(
                    "max_frames", f"max_frames must be at least num_frames ({self.num_frames}), the shortest clip "
                    f"taken in 'whole' mode, got {self.max_frames}"
                )
        if self.short_videos not in SHORT_VIDEO_POLICIES:
            raise ReadConfigError("short_videos",
                                  f"short_videos must be one of {SHORT_VIDEO_POLICIES}, got {self.short_videos!r}")

        if (self.resolution is None) == (self.buckets is None):
            raise ReadConfigError("resolution", "set exactly one of resolution=(H, W) and buckets=((H, W), ...)")
        if self.resolution is not None:
            object.__setattr__(self, "resolution", _size("resolution", self.resolution))
        else:
            if isinstance(self.buckets, (str, bytes)) or not hasattr(self.buckets, "__iter__"):
                raise ReadConfigError("buckets", f"buckets must be a sequence of (H, W) sizes, got {self.buckets!r}")
            buckets = tuple(_size("buckets", b) for b in self.buckets)
            if not buckets:
                raise ReadConfigError("buckets", "buckets must hold at least one (H, W) size")
            if len(set(buckets)) != len(buckets):
                raise ReadConfigError("buckets", f"buckets must not repeat a size, got {buckets}")
            object.__setattr__(self, "buckets", buckets)

        if isinstance(self.video_extensions, str):
            raise ReadConfigError("video_extensions",
                                  "video_extensions must be a sequence of extensions, e.g. ('mp4', 'mkv')")
        exts = tuple(str(e).lower().lstrip(".") for e in self.video_extensions)
        if not exts or any(not _PART_NAME.match(e) or "." in e for e in exts):
            raise ReadConfigError("video_extensions", "video_extensions must be plain extensions like 'mp4' (no "
                                  f"dots inside), got {self.video_extensions!r}")
        object.__setattr__(self, "video_extensions", exts)

        if self.caption_key is not None:
            if not isinstance(self.caption_key, str):
                raise ReadConfigError("caption_key", f"caption_key must be a string or None, got {self.caption_key!r}")
            part, _, field = self.caption_key.partition(":")
            if not _PART_NAME.match(part) or (":" in self.caption_key and not field):
                raise ReadConfigError(
                    "caption_key", "caption_key must be a lower-case part name ('txt') or 'json:FIELD' "
                    f"('json:caption'), got {self.caption_key!r}"
                )
        if not isinstance(self.meta_key, str) or not _PART_NAME.match(self.meta_key):
            raise ReadConfigError("meta_key", f"meta_key must be a part name such as 'json', got {self.meta_key!r}")
        _check_int("shard_block_size", self.shard_block_size, minimum=1)
        _check_int("decode_threads", self.decode_threads, minimum=0)
        if not isinstance(self.resize_at_decode, bool):
            raise ReadConfigError("resize_at_decode",
                                  f"resize_at_decode must be True or False, got {self.resize_at_decode!r}")
        if self.decoder not in DECODERS:
            raise ReadConfigError("decoder", f"decoder must be one of {DECODERS}, got {self.decoder!r}")

    @property
    def clip_policy(self) -> str:
        """The clip policy without its count: "first", "uniform", "all" or "whole"."""
        if self.clips in ("first", "all", "whole"):
            return self.clips
        match = _UNIFORM.match(self.clips) if isinstance(self.clips, str) else None
        if match and int(match.group(1)) >= 1:
            return "uniform"
        raise ReadConfigError("clips", f"clips must be one of {CLIP_POLICIES} with N >= 1 (e.g. 'uniform:4'), "
                              f"got {self.clips!r}")

    @property
    def clip_count(self) -> int | None:
        """N for "uniform:N", else None."""
        match = _UNIFORM.match(self.clips)
        return int(match.group(1)) if match else None


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ReadConfigError(name, f"{name} must be an integer >= {minimum}, got {value!r}")


def _size(what: str, value: object) -> tuple[int, int]:
    try:
        h, w = value  # type: ignore[misc]
    except (TypeError, ValueError):
        raise ReadConfigError(what, f"{what} must be (height, width), got {value!r}") from None
    for v in (h, w):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0 or v % 8 != 0:
            raise ReadConfigError(what, f"{what} sizes must be positive multiples of 8 as (height, width), got {value!r}")
    return (h, w)
