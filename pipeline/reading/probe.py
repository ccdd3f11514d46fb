"""What a video is, said once: its picture (geometry) and its frames (timing), and how to open it.

Both decoders and the dry run take these facts from here, so what the dry run predicts is
what the job writes. The picture's facts come from a decoded frame, not the container's
header: the frame carries the display matrix (rotation) that FFmpeg exports from the
container, and the decoder's context the sample aspect ratio that may live only in the
bitstream. The frame count and rate are measured from every frame's timestamp when the
video was read to its end; a first clip stops reading early (its cost must not grow with
the video's length), and then they come from the container's header, marked as an estimate.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from .records import MEDIA_VIDEO, STAGE_DECODE, ClipInfo, ErrorRecord, SampleError, describe

# Opening: FFmpeg's stream analysis cut to the minimum (the first frame is decoded here anyway,
# and says what the analysis would guess), and the frame it still decodes for H.264 (to guess
# the reorder delay, which nothing here uses) skipped: 10-20 ms at 720p, more at 1080p. It skips
# only in the analysis' own decoder, not in the one that decodes here.
QUICK_OPEN = {"probesize": "32", "analyzeduration": "1", "fpsprobesize": "0", "skip_frame": "all"}


@dataclass(frozen=True)
class Geometry:
    """What a decoded frame says about the picture."""

    stored_height: int
    stored_width: int
    pixel_aspect: float
    """Sample (pixel) aspect ratio: display width = stored width * pixel_aspect."""
    rotation: int
    """Counter-clockwise degrees (0, 90, 180, 270) to turn stored frames for display."""
    mirrored: bool = False
    """Flipped left-right before the turn: an image's EXIF orientation may say so (2, 4, 5, 7), a video's never."""

    @property
    def display_size(self) -> tuple[int, int]:
        """(height, width) as the video is meant to be seen."""
        h, w = self.stored_height, max(1, round(self.stored_width * self.pixel_aspect))
        return (w, h) if self.rotation in (90, 270) else (h, w)


@dataclass(frozen=True)
class Timing:
    """How many frames, at what rate, over how long."""

    num_frames: int
    fps: float | None
    """None for an image: it has no frame rate."""
    duration: float | None
    """Seconds from the first frame's start to the last frame's end; None for an image."""
    estimated: bool
    """From the container's header, not counted: a video not read to its end (see `header_timing`)."""


@dataclass(frozen=True)
class VideoProbe:
    """A sample's video (or image) as the job would read it: for the dry run."""

    codec: str
    geometry: Geometry
    timing: Timing
    clips: list[ClipInfo]
    """What each clip the job would take from it is (its frames are not decoded)."""
    problem: ErrorRecord | None = None
    """Why no clip comes from it (a video too short for one): the record the job would write."""
    media_type: str = MEDIA_VIDEO
    """"image": `codec` is the image's format (jpeg, png, ...), `timing` one frame without a rate."""


def open_video(path: str, options: dict | None = QUICK_OPEN) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    """The file and its first video stream (an attached cover picture is not one); SampleError if none."""
    try:
        container = av.open(path, options=options, metadata_errors="ignore")
        stream = _video_stream(container)
        if stream is None and options is not None:  # some files show their video only after FFmpeg's full analysis
            container.close()
            container = av.open(path, metadata_errors="ignore")
            stream = _video_stream(container)
    except Exception as exc:  # noqa: BLE001 - anything PyAV raises here means unreadable
        raise SampleError(ErrorRecord(STAGE_DECODE, "UnreadableVideo", without_path(describe(exc), path))) from None
    if stream is None:
        container.close()
        raise SampleError(ErrorRecord(STAGE_DECODE, "NoVideoStream", "the file holds no video stream"))
    return container, stream


def _video_stream(container):
    streams = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    return streams[0] if streams else None


def geometry_of(frame: av.VideoFrame, stream: av.video.stream.VideoStream) -> Geometry:
    """The picture's geometry from a decoded frame of `stream` (the decoder has read the bitstream's aspect)."""
    sar = stream.codec_context.sample_aspect_ratio or stream.sample_aspect_ratio
    return Geometry(
        stored_height=frame.height,
        stored_width=frame.width,
        pixel_aspect=float(sar) if sar and Fraction(sar) > 0 else 1.0,
        rotation=normalize_rotation(frame.rotation),
    )


def first_frame_geometry(path: str) -> tuple[str, Geometry]:
    """Codec and geometry from the video's first frame (for the decord path, whose decoder says neither)."""
    try:
        return _first_frame_geometry(path, QUICK_OPEN)
    except SampleError:
        return _first_frame_geometry(path, None)  # some files need FFmpeg's full analysis to give a frame


def _first_frame_geometry(path: str, options: dict | None) -> tuple[str, Geometry]:
    container, stream = open_video(path, options)
    try:
        with container:
            stream.codec_context.thread_count = 1
            frame = next(container.decode(stream), None)
            if frame is None:
                raise SampleError(ErrorRecord(STAGE_DECODE, "NoFrames", "no frame could be decoded"))
            return stream.codec_context.name, geometry_of(frame, stream)
    except SampleError:
        raise
    except Exception as exc:  # noqa: BLE001 - anything PyAV raises means unreadable
        raise SampleError(ErrorRecord(STAGE_DECODE, "UnreadableVideo", without_path(describe(exc), path))) from None


def measured_timing(starts: np.ndarray, end: float) -> Timing:
    """Counted from every frame's start time (sorted) and the video's end."""
    duration = end - float(starts[0])
    return Timing(len(starts), len(starts) / duration if duration > 0 else 0.0, duration, estimated=False)


def header_timing(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                  frames_read: int) -> Timing:
    """The container header's frame count and rate, for a video not read to its end.

    The count is exact where the container counts its frames (mp4, mov), the duration x the
    average frame rate otherwise; the rate is count / duration. Never fewer frames than were read.
    """
    duration = float(stream.duration * stream.time_base) if stream.duration else 0.0
    if duration <= 0 and container.duration:
        duration = container.duration / av.time_base
    rate = float(stream.average_rate or stream.guessed_rate or 0)
    count = stream.frames or (round(duration * rate) if duration > 0 and rate > 0 else 0)
    count = max(count, frames_read)
    fps = count / duration if duration > 0 else rate
    return Timing(count, fps, duration, estimated=True)


def normalize_rotation(degrees: float | int | None) -> int:
    """Nearest multiple of 90 in [0, 360)."""
    if not degrees:
        return 0
    return int(round(float(degrees) / 90.0)) % 4 * 90


def without_path(message: str, path: str) -> str:
    """Error messages name the temporary file; records should not (it is gone, and random)."""
    return message.replace(f"'{path}'", "the video").replace(path, "the video")
