"""Test images made on the fly with Pillow (and a PNG header written by hand for a decompression bomb).

Pictures come from `tests.support.videos` (smooth waves, a red corner to check orientation), so an
image and a video of a mixed shard look alike.
"""

from __future__ import annotations

import io
import itertools
import struct
import zlib

import numpy as np
from PIL import Image

from tests.support.videos import corner_frames, smooth_frames

FORMATS = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "gif": "GIF", "bmp": "BMP"}


def photo(height: int, width: int, shift: int = 0) -> np.ndarray:
    """(height, width, 3) uint8: smooth colour waves, like a natural picture (no hard edges)."""
    return np.roll(smooth_frames(1, height, width)[0], shift, axis=1)


def corner(height: int, width: int) -> np.ndarray:
    """(height, width, 3) uint8: flat background, red top-left quarter (see `videos.CORNER_COLOR`)."""
    return corner_frames(1, height, width)[0]


def encode_image(picture: np.ndarray | Image.Image, ext: str = "png", **options) -> bytes:
    """The file's bytes: `picture` (an array or a Pillow image of any mode) saved as `ext` with Pillow's options."""
    image = picture if isinstance(picture, Image.Image) else Image.fromarray(picture)
    buffer = io.BytesIO()
    image.save(buffer, FORMATS[ext], **options)
    return buffer.getvalue()


def jpeg(picture: np.ndarray | Image.Image, orientation: int | None = None, quality: int = 95, **options) -> bytes:
    """A JPEG, tagged with an EXIF orientation (1-8) if given: the picture is stored as given, shown turned."""
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        options["exif"] = exif.tobytes()
    return encode_image(picture, "jpg", quality=quality, **options)


def animated(frames: list[np.ndarray], ext: str, duration_ms: int = 100) -> bytes:
    """An animated GIF or WebP (lossless) of these frames."""
    images = [Image.fromarray(f) for f in frames]
    options = {"lossless": True} if ext == "webp" else {}
    return encode_image(images[0], ext, save_all=True, append_images=images[1:], duration=duration_ms, loop=0,
                        **options)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that says it is width x height 8-bit RGB, with a few bytes of image data: a decompression bomb's
    header (a real one compresses its pixels ~1000:1; this one would fail once decoded, never getting there)."""
    return _png(width, height, zlib.compress(bytes(64)))


def black_png(width: int, height: int) -> bytes:
    """A real PNG of width x height black RGB pixels, compressed ~1000:1 (6000 x 6000: 108 MB decoded, 105 KB),
    written a row at a time so that making it costs no memory."""
    compressor, row, data = zlib.compressobj(9), bytes(1 + 3 * width), []  # each row: filter byte 0, then pixels
    data += [compressor.compress(row) for _ in range(height)]
    return _png(width, height, b"".join(data) + compressor.flush())


def _png(width: int, height: int, image_data: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", image_data) + chunk(b"IEND", b"")


# -- a CMYK ICC profile, for checking that a CMYK image's embedded profile is applied --------------

# Lab colours as 8-bit ICC v2 encoding (L * 255 / 100, a + 128, b + 128).
LAB_WHITE, LAB_BLACK, LAB_RED, LAB_GRAY = (255, 128, 128), (0, 128, 128), (138, 208, 195), (128, 128, 128)


def odd_cmyk_profile() -> bytes:
    """An ICC v2 CMYK printer profile (one lut8 A2B0 table to Lab) that prints cyan as red: no ink is white, black
    ink black, cyan red, the rest gray. Applied, cyan comes out red; by the plain formula, cyan."""
    clut = b"".join(bytes(LAB_BLACK if k else LAB_RED if c else LAB_GRAY if m or y else LAB_WHITE)
                    for c, m, y, k in itertools.product((0, 1), repeat=4))  # the first input varies slowest
    lut = b"mft1" + bytes(4) + bytes([4, 3, 2, 0]) + b"".join(_s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    lut += bytes(range(256)) * 4 + clut + bytes(range(256)) * 3
    desc = b"desc" + bytes(4) + struct.pack(">I", 5) + b"test\0" + bytes(8 + 3 + 67)
    d50 = _s15(0.9642) + _s15(1.0) + _s15(0.8249)
    tags = [(b"desc", desc), (b"wtpt", b"XYZ " + bytes(4) + d50), (b"cprt", b"text" + bytes(4) + b"none\0"),
            (b"A2B0", lut)]
    offset = 128 + 4 + 12 * len(tags)
    table, body = struct.pack(">I", len(tags)), b""
    for signature, data in tags:
        data += bytes(-len(data) % 4)
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += data
    header = (struct.pack(">I", offset + len(body)) + b"lcms" + bytes([2, 0x10, 0, 0]) + b"prtr" + b"CMYK" + b"Lab "
              + bytes(12) + b"acsp" + b"APPL" + bytes(24) + d50 + bytes(48))
    assert len(header) == 128
    return header + table + body


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))
