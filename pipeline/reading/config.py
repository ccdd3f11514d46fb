"""What to read and how: one frozen, picklable config checked up front.

Every mistake a user can make here would otherwise surface much later as odd clips or a crashed
worker, so `ReadConfig.__post_init__` rejects it at once with a message that says what is allowed.
Its fields are also the job's read section (``job/config.py``): the job's flags, their defaults and
help come from here, and ``ConfigError.field`` names the flag.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from ..settings import ConfigError, boolean, check_fields, integer, number, one_of, optional, setting

CLIP_POLICIES = ("first", "uniform:N", "all", "whole")
SHORT_VIDEO_POLICIES = ("skip", "shorten")
DEFAULT_VIDEO_EXTENSIONS = ("mp4", "mkv", "webm", "mov", "avi")
# What image-text shards hold (img2dataset writes jpg, png or webp). Left out, to be named when meant: gif (often a
# video: list it under video_extensions to read it as one, under image_extensions for its first frame), bmp and
# tiff (rare in shards; tiff brings multi-page, float and 32-bit modes), avif (only where Pillow was built with it).
DEFAULT_IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
# Decompression bombs: a 30,000 x 30,000 PNG is under 1 MB on disk and 900 megapixels (2.7 GB) decoded. 64 MP
# admits camera photos up to 61 MP; a PNG at the limit takes a worker 0.25 GB (RGB) to 0.55 GB (with transparency)
# at its peak, measured (a JPEG decodes at a reduced scale: far less).
DEFAULT_MAX_IMAGE_PIXELS = 64_000_000

DECODERS = ("pyav", "decord")

_UNIFORM = re.compile(r"^uniform:(\d+)$")
_PART_NAME = re.compile(r"^[a-z0-9_][a-z0-9_.-]*$")
_SIZE_TEXT = re.compile(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?")


def _clips(value: Any) -> str:
    match = _UNIFORM.match(value) if isinstance(value, str) else None
    if value in ("first", "all", "whole") or (match and int(match.group(1)) >= 1):
        return value
    raise ConfigError(f"must be one of {CLIP_POLICIES} with N >= 1 (e.g. 'uniform:4'), got {value!r}")


def _size(value: Any) -> tuple[int, int]:
    try:
        h, w = value
    except (TypeError, ValueError):
        raise ConfigError(f"must be (height, width), got {value!r}") from None
    for v in (h, w):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0 or v % 8 != 0:
            raise ConfigError(f"sizes must be positive multiples of 8 as (height, width), got {value!r}")
    return (h, w)


def _buckets(value: Any) -> tuple[tuple[int, int], ...]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ConfigError(f"must be a sequence of (H, W) sizes, got {value!r}")
    buckets = tuple(_size(b) for b in value)
    if not buckets:
        raise ConfigError("must hold at least one (H, W) size")
    if len(set(buckets)) != len(buckets):
        raise ConfigError(f"must not repeat a size, got {buckets}")
    return buckets


def _extensions(example: str, empty_means: str | None = None):
    """A check of a list of part extensions (`empty_means`: what an empty list does, where one is allowed)."""
    def check(value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            raise ConfigError(f"must be a sequence of extensions, e.g. ('{example}',)")
        exts = tuple(str(e).lower().lstrip(".") for e in value)
        if (not exts and empty_means is None) or any(not _PART_NAME.match(e) or "." in e for e in exts):
            empty = f"; empty {empty_means}" if empty_means else ""
            raise ConfigError(f"must be plain extensions like '{example}' (no dots inside){empty}, got {value!r}")
        return exts
    return check


def _image_extensions(value: Any) -> tuple[str, ...]:
    exts = _extensions("jpg", empty_means="reads no images")(value)
    from .image import unknown_image_extensions  # PIL is imported only where images are configured

    unknown = unknown_image_extensions(exts)
    if unknown:
        raise ConfigError(f"must be extensions of image formats Pillow opens here (e.g. jpg, png, webp, gif, bmp, "
                          f"tiff), got {list(unknown)}")
    return exts


def _caption_key(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"must be a string or None, got {value!r}")
    part, colon, field = value.partition(":")
    if not _PART_NAME.match(part) or (colon and not field):
        raise ConfigError(f"must be a lower-case part name ('txt') or 'json:FIELD' ('json:caption'), got {value!r}")
    return value


def _part_name(value: Any) -> str:
    if not isinstance(value, str) or not _PART_NAME.match(value):
        raise ConfigError(f"must be a part name such as 'json', got {value!r}")
    return value


# -- text (flags, YAML) to values ------------------------------------------------------------------

def parse_size(value: Any) -> tuple[int, int]:
    """ "256x448", "256" (256x256) or [256, 448] -> (256, 448)."""
    if isinstance(value, (list, tuple)):
        value = "x".join(map(str, value))
    match = _SIZE_TEXT.fullmatch(str(value))
    if not match:
        raise ConfigError(f"{value!r} is not a size; use HxW (e.g. 256x448) or N for NxN", "resolution/buckets")
    height = int(match.group(1))
    return height, int(match.group(2) or height)


def parse_sizes(value: Any) -> tuple[tuple[int, int], ...]:
    """ "256x448,448x256" or [[256, 448], [448, 256]] -> ((256, 448), (448, 256))."""
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return tuple(parse_size(item) for item in items if str(item).strip())


def parse_list(value: Any) -> tuple[str, ...]:
    """ "mp4,.MKV" or ["mp4", ".MKV"] -> ("mp4", "mkv")."""
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return tuple(str(item).strip().lstrip(".").lower() for item in items if str(item).strip())


@dataclass(frozen=True)
class ReadConfig:
    """How shards are read, which clips are taken and what size they come out.

    Exactly one of `resolution` and `buckets` must be set. Sizes are (height, width). The fields
    with a flag are the job's read section; they define what an output holds.

    A sample's media part is its video if it has one (`video_extensions`), else its image
    (`image_extensions`): video2dataset-style shards carry a thumbnail beside the video. An extension
    belongs to one list. An image gives one clip of one frame whatever the clip settings (`num_frames`,
    `fps`, `clips`, `max_frames`, `short_videos` apply to videos), at the same size as a video's frames.
    """

    DEFINES_OUTPUT: ClassVar[bool] = True

    num_frames: int = setting(17, "frames per clip: 1 + a multiple of the temporal compression", integer(1),
                              arg_type=int)
    temporal_compression: int | None = setting(
        4, "the model's temporal compression (4 or 8 for WF-VAE); None until the model is known",
        optional(integer(1)), flag=False)
    fps: float | None = setting(None, "resample clips to this frame rate by timestamps",
                                optional(number(0, inclusive=False, what="a positive number or None")),
                                shown="source rate", arg_type=float)
    clips: str = setting("first", "clip policy: first, uniform:N (N evenly spread clips), all (non-overlapping), "
                                  "whole (the long-clip mode)", _clips)
    max_frames: int | None = setting(None, "with --clips whole: longest clip taken from a video",
                                     optional(integer(1)), shown="no limit", arg_type=int)
    short_videos: str = setting("skip", "a video shorter than one clip: skip (an error record) or shorten the clip",
                                one_of(SHORT_VIDEO_POLICIES), choices=SHORT_VIDEO_POLICIES)
    resolution: tuple[int, int] | None = setting(
        (256, 256), "output size HxW (e.g. 256x448) or N for NxN: resize to cover, centre-crop",
        optional(_size), parse=lambda v: None if v is None else parse_size(v))
    buckets: tuple[tuple[int, int], ...] | None = setting(
        None, "aspect-ratio buckets, comma-separated HxW sizes (replace --resolution); each video goes to the "
              "nearest log-aspect, then is resized and cropped", optional(_buckets), shown="none",
        parse=lambda v: None if v is None else parse_sizes(v))
    caption_key: str | None = setting(
        "txt", "caption source: a sample part name (txt) or json:FIELD (dotted for nested fields, "
               "json:meta.caption)", _caption_key)
    video_extensions: tuple[str, ...] = setting(
        DEFAULT_VIDEO_EXTENSIONS, "comma-separated video file extensions, in order of preference; a sample with "
                                  "both a video and an image part is read as its video", _extensions("mp4"),
        parse=parse_list)
    image_extensions: tuple[str, ...] = setting(
        DEFAULT_IMAGE_EXTENSIONS, "comma-separated image file extensions, in order of preference ('' reads no "
                                  "images); an image is one clip of one frame; a sample with a video part too is read "
                                  "as its video (an image beside a video is taken for its thumbnail); an animated "
                                  "image gives its first frame", _image_extensions, parse=parse_list)
    max_image_pixels: int = setting(
        DEFAULT_MAX_IMAGE_PIXELS, "largest image read, in pixels (width x height, from its header): a larger one is "
                                  "refused before decoding (decompression bombs)", integer(1), arg_type=int)
    decoder: str = setting("pyav", "video decoder: pyav (one pass, every codec FFmpeg decodes; measured fastest) or "
                                   "decord (its index for first and uniform:N)", one_of(DECODERS), choices=DECODERS)
    meta_key: str = setting("json", "the part kept as the sample's metadata text", _part_name, flag=False)
    shard_block_size: int = setting(8 * 2**20, "bytes per ranged read when streaming a shard from an object store",
                                    integer(1), flag=False)
    decode_threads: int = setting(1, "decoder threads per video (0 = FFmpeg's choice); one per CPU worker is the "
                                     "intent", integer(0), flag=False)
    resize_at_decode: bool = setting(True, "let the decoder scale while converting to RGB (fast); False decodes at "
                                           "source size and resizes with torch (antialiased bilinear)",
                                     boolean, flag=False)
    tmp_dir: str | None = setting(None, "where videos are written for decoding (None: the system default; "
                                        "/dev/shm is faster)", flag=False)

    def __post_init__(self) -> None:
        check_fields(self)
        tc = self.temporal_compression
        if tc is not None and (self.num_frames - 1) % tc:
            below = 1 + (self.num_frames - 1) // tc * tc
            raise ConfigError(f"must be 1 + a multiple of the model's temporal compression ({tc}), e.g. "
                              f"{below} or {below + tc}; got {self.num_frames}", "num_frames")
        if self.max_frames is not None:
            if self.clips != "whole":
                raise ConfigError(f"only applies to clips='whole', not clips={self.clips!r}", "max_frames")
            if self.max_frames < self.num_frames:
                raise ConfigError(f"must be at least num_frames ({self.num_frames}), the shortest clip taken in "
                                  f"'whole' mode, got {self.max_frames}", "max_frames")
        both = [e for e in self.image_extensions if e in self.video_extensions]
        if both:
            raise ConfigError(f"must not repeat video_extensions ({both}): an extension is read as one media type, "
                              "list it under one of them", "image_extensions")
        if (self.resolution is None) == (self.buckets is None):
            raise ConfigError("must be set if and only if buckets is not (set exactly one of resolution=(H, W) "
                              "and buckets=((H, W), ...))", "resolution")

    def for_model(self, temporal_compression: int) -> ReadConfig:
        """These settings for a model of this temporal compression (clip lengths checked against it)."""
        return dataclasses.replace(self, temporal_compression=temporal_compression)

    @property
    def clip_policy(self) -> str:
        """The clip policy without its count: "first", "uniform", "all" or "whole"."""
        return "uniform" if _UNIFORM.match(self.clips) else self.clips

    @property
    def clip_count(self) -> int | None:
        """N for "uniform:N", else None."""
        match = _UNIFORM.match(self.clips)
        return int(match.group(1)) if match else None

    @property
    def whole_videos(self) -> bool:
        return self.clips == "whole"
