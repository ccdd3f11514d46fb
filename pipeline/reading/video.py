"""Opening one video for decord: temp file, decord reader.

decord reads from a temporary file path, never from memory: on some damaged
videos its in-memory reader segfaults, while from a path it raises a clean
error. PyAV (a newer FFmpeg, `probe.py`) reads what decord does not expose: the rotation in
the display matrix and the pixel aspect ratio. decord 0.6 mishandles rotated
videos (wrong array shapes), so a rotated file is first remuxed without its
rotation (packets copied, nothing re-encoded) and the frames are turned here.
"""

from __future__ import annotations

import os
import tempfile

import av
import decord
import numpy as np

from .early_end import WholePackets
from .probe import without_path
from .records import STAGE_DECODE, ErrorRecord, SampleError, describe


class TempVideoFile:
    """The video bytes in a temporary file, removed on close."""

    def __init__(self, data: bytes, ext: str, tmp_dir: str | None = None):
        suffix = "." + ext if ext else ""
        fd, self.path = tempfile.mkstemp(suffix=suffix, prefix="wfvae-video-", dir=tmp_dir)
        self._extra: list[str] = []
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        except BaseException:
            self.close()
            raise

    def sibling(self) -> str:
        """A fresh path next to this file with the same suffix, removed on close."""
        root, suffix = os.path.splitext(self.path)
        path = f"{root}-{len(self._extra)}{suffix}"
        self._extra.append(path)
        return path

    def close(self) -> None:
        for path in [self.path, *self._extra]:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def __enter__(self) -> TempVideoFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def remux_without_rotation(src: str, tmp: TempVideoFile) -> str:
    """Copy the video packets into a new file (same container) whose display matrix is the identity.

    A last packet cut short is left out (`early_end.WholePackets`): the copy of a cut file is one decord opens.
    """
    dst = tmp.sibling()
    try:
        _remux(src, dst)
    except Exception as exc:  # noqa: BLE001
        message = f"removing the rotation: {without_path(describe(exc), src)}"
        raise SampleError(ErrorRecord(STAGE_DECODE, "RemuxFailed", message)) from None
    return dst


def _remux(src: str, dst: str) -> None:
    with av.open(src, metadata_errors="ignore") as inp:
        stream = next(s for s in inp.streams.video if not s.disposition & av.stream.Disposition.attached_pic)
        with av.open(dst, "w", format=inp.format.name.split(",")[0]) as out:
            copy = out.add_stream_from_template(stream)
            copy.set_display_rotation(0)
            for packet in WholePackets(inp.demux(stream)):
                packet.stream = copy
                out.mux(packet)


def open_reader(path: str, height: int | None, width: int | None, threads: int, codec: str) -> decord.VideoReader:
    """A decord reader that scales to (height, width) while converting to RGB (None: source size)."""
    kwargs = {"width": width, "height": height} if height and width else {}
    try:
        return decord.VideoReader(path, ctx=decord.cpu(0), num_threads=threads, **kwargs)
    except Exception as exc:  # noqa: BLE001 - decord raises DECORDError or RuntimeError
        message = without_path(describe(exc), path)
        # decord's FFmpeg (4.1) lacks some decoders PyAV has (AV1, ...): it then finds no stream.
        error_type = "UnsupportedCodec" if "cannot find video stream" in message else "UnreadableVideo"
        raise SampleError(ErrorRecord(STAGE_DECODE, error_type, f"decord cannot open this {codec} video: {message}")) from None


def frame_times(reader: decord.VideoReader) -> tuple[np.ndarray, np.ndarray]:
    """Start and end time (seconds) of every frame, in presentation order."""
    n = len(reader)
    if n == 0:
        raise SampleError(ErrorRecord(STAGE_DECODE, "NoFrames", "the video has no frames"))
    try:
        times = np.asarray(reader.get_frame_timestamp(np.arange(n)), dtype=np.float64).reshape(n, 2)
    except Exception as exc:  # noqa: BLE001
        raise SampleError(ErrorRecord(STAGE_DECODE, "BadTimestamps", describe(exc))) from None
    return times[:, 0].copy(), times[:, 1].copy()


def read_frames(reader: decord.VideoReader, indices: np.ndarray) -> np.ndarray:
    """Decode the given frames as (n, h, w, 3) uint8 RGB, stored orientation."""
    batch = reader.get_batch(np.asarray(indices, dtype=np.int64).tolist())
    frames = batch.asnumpy()
    del batch
    if frames.shape[0] != len(indices) or frames.ndim != 4 or frames.shape[3] != 3:
        message = f"decord returned shape {frames.shape} for {len(indices)} frames"
        raise SampleError(ErrorRecord(STAGE_DECODE, "DecodeFailed", message))
    return frames
