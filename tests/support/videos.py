"""Tiny test videos, made on the fly with PyAV or the ffmpeg binary of imageio-ffmpeg.

Frames can carry their own index as a row of black/white bars (`index_frames`,
`read_index`) so a test can check exactly which source frames came back, and a
distinct color in the top-left corner so it can check orientation.
"""

from __future__ import annotations

import io
import os
import subprocess
import tempfile
from fractions import Fraction

import av
import imageio_ffmpeg
import numpy as np
from PIL import Image

INDEX_BITS = 8
CORNER_COLOR = (255, 0, 0)  # red
BACKGROUND = (40, 90, 160)


def index_frames(count: int, height: int = 48, width: int = 64) -> np.ndarray:
    """(count, height, width, 3) uint8 frames; frame i shows i in binary in its top half.

    The top half is split into INDEX_BITS vertical bars, bar b white when bit b of i
    is set; the bottom half is a flat background.
    """
    if count > 2**INDEX_BITS:
        raise ValueError(f"at most {2**INDEX_BITS} frames can carry an index")
    frames = np.empty((count, height, width, 3), np.uint8)
    frames[:] = BACKGROUND
    bar = width // INDEX_BITS
    for i in range(count):
        for b in range(INDEX_BITS):
            frames[i, : height // 2, b * bar : (b + 1) * bar] = 255 if (i >> b) & 1 else 0
    return frames


def corner_frames(count: int, height: int = 48, width: int = 64) -> np.ndarray:
    """Flat background with a red block in the top-left corner (a quarter of each side)."""
    frames = np.empty((count, height, width, 3), np.uint8)
    frames[:] = BACKGROUND
    frames[:, : height // 4, : width // 4] = CORNER_COLOR
    return frames


def read_index(frames: np.ndarray) -> list[int]:
    """Inverse of `index_frames` for decoded (n, h, w, 3) frames at the source size."""
    n, h, w, _ = frames.shape
    bar = w // INDEX_BITS
    top = frames[:, h // 8 : h // 2 - h // 8, : bar * INDEX_BITS].astype(np.float32).mean(axis=(1, 3))
    bits = top.reshape(n, INDEX_BITS, bar)[:, :, bar // 4 : bar - bar // 4].mean(axis=2) > 127
    return (bits * (1 << np.arange(INDEX_BITS))).sum(axis=1).tolist()


def smooth_frames(count: int, height: int, width: int) -> np.ndarray:
    """Slowly varying color waves that move a little each frame: like natural video, no hard edges."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = np.empty((count, height, width, 3), np.uint8)
    for i in range(count):
        for c, (fy, fx) in enumerate(((3.0, 2.0), (2.0, 4.0), (5.0, 1.0))):
            wave = np.sin(2 * np.pi * (fy * y / height + fx * x / width) + 0.2 * i + c)
            frames[i, :, :, c] = (127.5 + 100 * wave).astype(np.uint8)
    return frames


def solid_frames(count: int, height: int, width: int, color=(200, 60, 30)) -> np.ndarray:
    frames = np.empty((count, height, width, 3), np.uint8)
    frames[:] = color
    return frames


def encode(
    frames: np.ndarray,
    fps: float = 25,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    container: str = "mp4",
    timestamps: list[float] | None = None,
    rotation: int | None = None,
    options: dict[str, str] | None = None,
    faststart: bool = False,
    sample_aspect: Fraction | None = None,
) -> bytes:
    """Encode RGB frames with PyAV and return the file's bytes.

    `timestamps` (seconds, multiples of 1 ms) makes a variable-frame-rate video.
    `rotation` stores a display matrix (counter-clockwise degrees, as PyAV and FFmpeg
    read it back). `faststart` puts an mp4's index first (so a cut file still opens).
    `sample_aspect` makes an anamorphic video: each stored pixel is shown that many times as wide.
    """
    if faststart:  # FFmpeg rewrites the file to move the index: it needs a real file
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "video." + container)
            _encode_to(path, frames, fps, codec, pix_fmt, container, timestamps, rotation, options, {"movflags": "+faststart"},
                       sample_aspect)
            with open(path, "rb") as f:
                return f.read()
    buffer = io.BytesIO()
    _encode_to(buffer, frames, fps, codec, pix_fmt, container, timestamps, rotation, options, {}, sample_aspect)
    return buffer.getvalue()


def _encode_to(target, frames, fps, codec, pix_fmt, container, timestamps, rotation, options, container_options,
               sample_aspect=None) -> None:
    options = {"crf": "12", **(options or {})} if codec.startswith("libx26") else dict(options or {})
    with av.open(target, "w", format=container, options=container_options) as out:
        stream = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        stream.width = frames.shape[2]
        stream.height = frames.shape[1]
        stream.pix_fmt = pix_fmt
        stream.options = options
        if timestamps is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        if sample_aspect is not None:
            stream.codec_context.sample_aspect_ratio = Fraction(sample_aspect)
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            if timestamps is not None:
                frame.pts = round(timestamps[i] * 1000)
                frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def ffmpeg(args: list[str], suffix: str) -> bytes:
    """Run imageio-ffmpeg's ffmpeg binary with `args` and an output file; return its bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "out" + suffix)
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args, path]
        subprocess.run(cmd, check=True, capture_output=True)
        with open(path, "rb") as f:
            return f.read()


def encode_with_ffmpeg(frames: np.ndarray, codec_args: tuple[str, ...], suffix: str = ".mp4", fps: int = 25) -> bytes:
    """Encode RGB frames with imageio-ffmpeg's ffmpeg binary (its encoders, e.g. libaom-av1), piped in raw."""
    n, h, w, _ = frames.shape
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "out" + suffix)
        cmd = [
            imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "-",
            *codec_args, "-pix_fmt", "yuv420p", path,
        ]
        subprocess.run(cmd, input=np.ascontiguousarray(frames).tobytes(), check=True, capture_output=True)
        with open(path, "rb") as f:
            return f.read()


def encode_av1(frames: np.ndarray, suffix: str = ".mp4") -> bytes:
    """AV1 (libaom, fastest preset, near-lossless) in mp4: the codec of much of today's web video."""
    return encode_with_ffmpeg(frames, ("-c:v", "libaom-av1", "-cpu-used", "8", "-crf", "10", "-g", "10"), suffix)


def ffmpeg_testsrc(seconds: float, size: str = "64x48", fps: int = 25, codec_args: tuple[str, ...] = (), suffix: str = ".mp4") -> bytes:
    """ffmpeg's moving test pattern, encoded with `codec_args` (e.g. ("-c:v", "libvpx-vp9"))."""
    return ffmpeg(["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}:duration={seconds}", *codec_args], suffix)


def ffmpeg_first_frame(data: bytes, suffix: str = ".mp4") -> np.ndarray:
    """The first frame as the ffmpeg command line shows it (rotation applied), RGB."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "in" + suffix)
        with open(src, "wb") as f:
            f.write(data)
        png = os.path.join(tmp, "first.png")
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", src, "-frames:v", "1", png]
        subprocess.run(cmd, check=True, capture_output=True)
        with Image.open(png) as image:
            return np.asarray(image.convert("RGB"))


def vfr_timestamps(fast: int = 30, slow: int = 29) -> list[float]:
    """Frame times of a variable-frame-rate video: `fast` frames at 25 fps, then `slow` at 10 fps."""
    return [i * 0.04 for i in range(fast)] + [fast * 0.04 + i * 0.1 for i in range(slow)]


def truncated(data: bytes, fraction: float) -> bytes:
    """The first `fraction` of a file."""
    return data[: int(len(data) * fraction)]


def cut_inside_frame(data: bytes, kept: int, suffix: str = ".mp4") -> bytes:
    """The file cut halfway through the data of its frame `kept` (decode order), as a download that stopped:
    the header (an mp4's index, put first with `faststart`; an avi's or Matroska file's header) still claims
    every frame, and `kept` whole frames remain."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "video" + suffix)
        with open(path, "wb") as f:
            f.write(data)
        with av.open(path) as container:
            packets = [(p.pos, p.size) for p in container.demux(container.streams.video[0]) if p.size]
    pos, size = packets[kept]
    return data[: pos + size // 2]


def random_bytes(size: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()
