"""An image sample read with Pillow: one clip of one frame, at the size a video's frames get.

`decode_image` and `probe_image` are pure functions of a `Sample` and `ReadConfig`, like the video
readers; `decode.py` dispatches to them on `Sample.media_type`, so a decode worker runs them and a
failure costs the one sample. The clip settings (`num_frames`, `fps`, `clips`, `max_frames`,
`short_videos`) do not apply: an image gives exactly one clip of one frame under every policy.

The rules, each stated once:

- Size first. The header's width x height is refused above `max_image_pixels` before a pixel is
  decoded (`ImageTooLarge`): a 30,000 x 30,000 PNG is under 1 MB and 2.7 GB decoded. Pillow's own
  bomb check (a process-wide global, 89 MP by default, with its own words) is switched off, so the
  setting is the one limit.
- Formats: only those of `image_extensions` are opened, whatever the part's own extension says (a
  PNG named .jpg is read; an EPS named .jpg, which Pillow would hand to Ghostscript, is not).
- Orientation: the EXIF orientation is applied (a JPEG tagged 6, "rotate 90", comes out as it is
  displayed: portrait). A JPEG's pixel density (non-square pixels) is ignored, as viewers do.
- Animation: an animated GIF, WebP or PNG gives its first frame, what a viewer shows before it
  plays (list gif under video_extensions to read a GIF as a video).
- To 8-bit RGB (`_resizable`, `_on_white`): palette, 1-bit, gray and YCbCr by Pillow's conversion;
  16-bit gray (I;16 and its byte orders) scaled by 255/65535, rounded, so white stays white; CMYK
  through its embedded ICC profile to sRGB (littlecms, perceptual intent), else (no profile, or one
  littlecms cannot use) by Pillow's plain formula; anything with transparency (LA, RGBA, PA, a
  palette or colour key with tRNS) composited on white, `ALPHA_BACKGROUND`: what a page shows behind
  a transparent PNG, and what img2dataset, which made most image shards, composites on. Gray stays
  one channel and alpha is composited after the resize, at the output's size (Pillow resizes LA and
  RGBA premultiplied, so that is the same picture): full-size copies cost memory. 32-bit
  integer (I) and float (F) images are refused (`UnsupportedImageMode`): their range (0..1,
  0..65535, HDR) is not written in the file, and a guess would be silently wrong pixels. Other
  ICC profiles (an RGB photo in Display P3) are not applied, as the video path ignores colour
  primaries.
- Geometry: the output size is `spatial.output_size` of the displayed size (the resolution, or the
  bucket nearest in aspect), and the centred window that a resize to cover then a centre crop
  keep (`spatial.cover_box`) is resized straight to it: a JPEG decodes at the smallest DCT scale
  (1/2, 1/4, 1/8) that keeps `REDUCING_GAP` times the output's pixels across the window, others
  are box-reduced to that, then Lanczos. Against Lanczos from full resolution in floating point
  (bench/images.py), a 1080p photo to 256x256 comes out at 54 dB (swscale's area filter, the video
  path's, 43 dB on the same picture), a JPEG in 8.4 ms of a core instead of 19 decoded whole.
- Errors, of stage "decode": `EmptyImage`, `UnreadableImage` (not an image of those formats),
  `ImageTooLarge`, `TruncatedImage` (the file ends before its picture), `UnsupportedImageMode`;
  anything else Pillow raises becomes `DecodeFailed` in `decode.py`, placed at the sample.
"""

from __future__ import annotations

import functools
import io
import math

import numpy as np
from PIL import ExifTags, Image, ImageCms, UnidentifiedImageError
from PIL.Image import Transpose

from .config import ReadConfig
from .probe import Geometry, Timing, VideoProbe
from .records import MEDIA_IMAGE, STAGE_DECODE, ClipInfo, ClipPiece, ErrorRecord, Sample, SampleError, describe
from .spatial import cover_box, output_size

ALPHA_BACKGROUND = (255, 255, 255)
"""What shows through transparent pixels: white."""

REDUCING_GAP = 2.0
"""The cheap reduction (JPEG's DCT scaling, Pillow's box reduce) stops at this many times the output
size; Lanczos does the rest. 1080p to 256x256 (bench/images.py), against Lanczos from full resolution:
2 gives 54 dB; 1, 41 dB in a third less time (a JPEG); 8 (no shortcut), 58 dB in twice the time."""

ONE_FRAME = Timing(num_frames=1, fps=None, duration=None, estimated=False)

# EXIF orientation -> (counter-clockwise turn, mirrored before it) for Geometry, and the transpose
# that shows the stored picture as displayed.
ORIENTATIONS: dict[int, tuple[int, bool, Transpose | None]] = {
    1: (0, False, None), 2: (0, True, Transpose.FLIP_LEFT_RIGHT),
    3: (180, False, Transpose.ROTATE_180), 4: (180, True, Transpose.FLIP_TOP_BOTTOM),
    5: (90, True, Transpose.TRANSPOSE), 6: (270, False, Transpose.ROTATE_270),
    7: (270, True, Transpose.TRANSVERSE), 8: (90, False, Transpose.ROTATE_90),
}
_TRANSPOSES = {(rotation, mirrored): transpose for rotation, mirrored, transpose in ORIENTATIONS.values()}

# Formats whose EXIF is read with the header and that can decode at a reduced scale (`Image.draft`).
_DRAFT_FORMATS = ("JPEG", "MPO")
_SIXTEEN_BIT_GRAY = ("I;16", "I;16L", "I;16B", "I;16N")
_EIGHT_BITS = ((np.arange(2**16, dtype=np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
"""16-bit gray to 8 bits, by table: v * 255 / 65535, rounded (65535 -> 255, 32768 -> 128, 300 -> 1)."""


def decode_image(sample: Sample, config: ReadConfig) -> ClipPiece:
    """The image's one clip: frames (1, H, W, 3) uint8 RGB, C-contiguous. Raises SampleError (unplaced)."""
    return _read(sample, config)[2]


def probe_image(sample: Sample, config: ReadConfig) -> VideoProbe:
    """What `decode_image` gives, for the dry run: format, geometry, one frame without a rate, the clip.

    It decodes the image too (the cost of one image), so a damaged one is found as the run finds it.
    """
    codec, geometry, piece = _read(sample, config)
    return VideoProbe(codec, geometry, ONE_FRAME, [piece.info], media_type=MEDIA_IMAGE)


def _read(sample: Sample, config: ReadConfig) -> tuple[str, Geometry, ClipPiece]:
    image = _open(sample.media, config)
    with image:
        if image.format not in _DRAFT_FORMATS:
            _load(image)  # a PNG finds EXIF written after its pixels only by reading them
        geometry = _geometry(image)
        out_h, out_w = output_size(*geometry.display_size, config)
        rgb = _pixels(image, geometry, out_h, out_w)
        codec = image.format.lower()
    frames = np.array(rgb, dtype=np.uint8)[None]  # a copy: Pillow's own buffer reads as a read-only array
    display_h, display_w = geometry.display_size
    info = ClipInfo(
        shard=sample.shard, key=sample.key, media_type=MEDIA_IMAGE, clip_index=0, frame_indices=[0],
        timestamps=[0.0], source_fps=None, source_height=display_h, source_width=display_w, source_num_frames=1,
        height=out_h, width=out_w, num_frames=1, fps=None, caption=sample.caption, meta=sample.meta,
        rotation=geometry.rotation, source_frames_estimated=False,
    )
    return codec, geometry, ClipPiece(info=info, frames=frames, start=0, is_last=True)


def _open(data: bytes, config: ReadConfig) -> Image.Image:
    """The image with only its header read, refused if it has too many pixels."""
    if not data:
        raise SampleError(ErrorRecord(STAGE_DECODE, "EmptyImage", "the image part is empty (0 bytes)"))
    Image.MAX_IMAGE_PIXELS = None  # Pillow's own bomb check: `max_image_pixels` below is the one limit
    formats = image_formats(config.image_extensions)
    try:
        image = Image.open(io.BytesIO(data), formats=formats)
    except UnidentifiedImageError:
        raise SampleError(ErrorRecord(
            STAGE_DECODE, "UnreadableImage",
            f"not an image in a format read here ({', '.join(formats)}, from --image-extensions); "
            f"the part begins {bytes(data[:12])!r}")) from None
    width, height = image.size
    if width * height > config.max_image_pixels:
        image.close()
        raise SampleError(ErrorRecord(
            STAGE_DECODE, "ImageTooLarge",
            f"{width} x {height} = {width * height:,} pixels (from its header) is over the limit of "
            f"{config.max_image_pixels:,}; --max-image-pixels raises it"))
    return image


def _load(image: Image.Image) -> None:
    try:
        image.load()
    except OSError as exc:  # Pillow says "image file is truncated" and has no class of its own for it
        if "truncated" not in str(exc):
            raise
        raise SampleError(ErrorRecord(STAGE_DECODE, "TruncatedImage",
                                      f"the file ends before its picture does ({describe(exc)})")) from None


def _geometry(image: Image.Image) -> Geometry:
    orientation = image.getexif().get(ExifTags.Base.Orientation)
    rotation, mirrored, _ = ORIENTATIONS.get(orientation, ORIENTATIONS[1])
    return Geometry(stored_height=image.height, stored_width=image.width, pixel_aspect=1.0, rotation=rotation,
                    mirrored=mirrored)


def _pixels(image: Image.Image, geometry: Geometry, out_h: int, out_w: int) -> Image.Image:
    """The displayed picture's cover window, resized to (out_h, out_w), as 8-bit RGB."""
    if geometry.rotation in (90, 270):  # worked in stored orientation, turned at the end
        out_h, out_w = out_w, out_h
    box = cover_box(image.height, image.width, out_h, out_w)
    scale = _draft(image, box, out_h, out_w)
    _load(image)
    resized = _resizable(image).resize((out_w, out_h), Image.Resampling.LANCZOS, box=tuple(v / scale for v in box),
                                       reducing_gap=REDUCING_GAP)
    rgb = _on_white(resized)  # at the output's size: with premultiplied resizing, the same as compositing first
    transpose = _TRANSPOSES[geometry.rotation, geometry.mirrored]
    return rgb.transpose(transpose) if transpose is not None else rgb


def _draft(image: Image.Image, box: tuple[float, float, float, float], out_h: int, out_w: int) -> float:
    """Let a JPEG decode at 1/2, 1/4 or 1/8 scale, keeping `REDUCING_GAP` x the output across `box`.

    Returns the scale taken (1 for other formats).
    """
    if image.format not in _DRAFT_FORMATS:
        return 1.0
    left, top, right, bottom = box
    width = image.width
    wanted = (math.ceil(width * REDUCING_GAP * out_w / (right - left)),
              math.ceil(image.height * REDUCING_GAP * out_h / (bottom - top)))
    drafted = image.draft(image.mode, wanted)
    return width / drafted[1][2] if drafted else 1.0


def _resizable(image: Image.Image) -> Image.Image:
    """The image as 8-bit L, LA, RGB or RGBA, by the rules in the module's docstring: modes that Pillow resizes
    as they should be (LA and RGBA with their colours premultiplied by alpha while resizing)."""
    mode = image.mode
    if mode in _SIXTEEN_BIT_GRAY:
        return Image.fromarray(_EIGHT_BITS[np.asarray(image)])
    if mode in ("I", "F"):
        raise _unsupported(mode, f"{'32-bit integer' if mode == 'I' else 'floating-point'} pixels have no range "
                                 "written in the file")
    if mode == "CMYK":
        return _cmyk_to_rgb(image)
    if mode in ("L", "LA", "RGB", "RGBA") and "transparency" not in image.info:
        return image
    try:
        if mode in ("PA", "La", "RGBa") or "transparency" in image.info:  # or a palette, gray or RGB with tRNS
            return image.convert("RGBA")
        return image.convert("L" if mode == "1" else "RGB")
    except ValueError as exc:  # Pillow converts no LAB or HSV to RGB, for one
        raise _unsupported(mode, describe(exc)) from None


def _on_white(image: Image.Image) -> Image.Image:
    """An L, LA, RGB or RGBA image as RGB, transparency composited on `ALPHA_BACKGROUND`."""
    if image.mode in ("LA", "RGBA"):
        background = Image.new("RGBA", image.size, (*ALPHA_BACKGROUND, 255))
        return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")
    return image.convert("RGB") if image.mode != "RGB" else image


def _unsupported(mode: str, why: str) -> SampleError:
    return SampleError(ErrorRecord(STAGE_DECODE, "UnsupportedImageMode",
                                   f"{why} (Pillow mode {mode}); read are 1-bit, gray (8 or 16 bits), palette, RGB, "
                                   "CMYK and YCbCr, with or without transparency"))


def _cmyk_to_rgb(image: Image.Image) -> Image.Image:
    profile = image.info.get("icc_profile")
    if profile:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
            return ImageCms.profileToProfile(image, source, _srgb(), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a profile littlecms cannot use: the plain formula, as without one
    return image.convert("RGB")


@functools.cache
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@functools.cache
def image_formats(extensions: tuple[str, ...]) -> tuple[str, ...]:
    """Pillow's formats for these extensions ("jpg" -> "JPEG"), the only ones opened."""
    return tuple(dict.fromkeys(f for f in map(_format_of, extensions) if f is not None))


def unknown_image_extensions(extensions: tuple[str, ...]) -> list[str]:
    """The extensions of no format this Pillow opens: for `ReadConfig`'s check."""
    return [ext for ext in extensions if _format_of(ext) is None]


def _format_of(extension: str) -> str | None:
    image_format = Image.registered_extensions().get("." + extension)  # imports every Pillow plugin, once
    return image_format if image_format in Image.OPEN else None  # some are registered for saving only
