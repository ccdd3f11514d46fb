"""Sample in, clips out: the per-sample work a CPU worker runs (an image sample: `image.py`).

`decode_clips` is a pure function of a picklable `Sample` and `ReadConfig`, so a
Ray task (or any worker process) can run it and a crash in a video library
costs that one sample. It decodes lazily: only the frames of the piece being
produced are in memory, so a whole-video clip read in pieces is bounded by the
piece size, not by the video's length.

Two decoders (`ReadConfig.decoder`):
- "pyav" (default): one pass per video with PyAV (`pyav_video.py`): every codec
  FFmpeg decodes, only the frames the clips need are decoded and converted, in the
  calling thread, so nothing is decoded while the caller holds a piece.
- "decord": decord indexes the video and decodes "first" and "uniform:N" with
  `get_batch`. Its decoder thread is fed far ahead of the frames asked for and keeps
  decoding into memory while the caller holds a piece, so it is stopped before
  control goes back to the caller. "all" and "whole" are read with PyAV (above),
  whose memory stays per piece.

A video that ends before its header says is read by one rule, whatever the decoder and
clip policy (`early_end.py`): its clips come from the frames it holds, each ClipInfo says
`source_ended_early`, and the sample gives an `EndedEarly` warning before its clips.

`probe_clips` runs the same code up to the first frame: what the clips of a sample
will be, for the dry run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import decord
import numpy as np

from .clip_sampling import plan_clips, video_end
from .config import ReadConfig
from .image import decode_image, probe_image
from .early_end import Claim, EndCheck, claim_of_file, end_by_index, end_of_read, held_timing
from .probe import Geometry, Timing, VideoProbe, first_frame_geometry, measured_timing
from .pyav_video import PyAVVideo
from .records import (MEDIA_IMAGE, MEDIA_VIDEO, STAGE_CLIP, STAGE_DECODE, Clip, ClipInfo, ClipPiece, ErrorRecord,
                      Sample, SampleError, describe)
from .spatial import center_crop, cover_size, output_size, resize, rotate
from .video import TempVideoFile, frame_times, open_reader, read_frames, remux_without_rotation


# Times a failed decord read is tried again with a fresh reader before the sample fails.
DECODE_RETRIES = 2


def decode_clips(sample: Sample, config: ReadConfig,
                 piece_frames: int | None = None) -> Iterator[ClipPiece | ErrorRecord]:
    """Decode the clips `config` asks for, as pieces of at most `piece_frames` frames.

    With `piece_frames=None` each clip is one piece. Pieces of a clip come in order,
    the last with `is_last=True`. Raises SampleError, its record placed at the sample, for
    a video that cannot give (more) clips; clips yielded before it are good.

    Warnings come as items: an ErrorRecord of level "warning" (placed at the sample), yielded
    before the sample's first piece, as soon as it is known; the sample goes on. The one warning
    is `EndedEarly` (a cut file: `early_end.py`). A consumer writes it to the error table beside
    the sample's rows, does not count it as a piece or a failure, and goes on reading the sample.
    """
    if piece_frames is not None and (isinstance(piece_frames, bool) or not isinstance(piece_frames, int) or piece_frames < 1):
        raise ValueError(f"piece_frames must be a positive integer or None, got {piece_frames!r}")
    if sample.media_type == MEDIA_IMAGE:  # one clip of one frame, whatever the clip settings
        with _placed(sample):
            piece = decode_image(sample, config)
        yield piece
        return
    with _placed(sample), TempVideoFile(_video_bytes(sample), sample.media_ext, config.tmp_dir) as tmp:
        if config.decoder == "decord" and config.clip_policy in ("first", "uniform"):
            yield from _decode_with_decord(sample, config, piece_frames, tmp)
        else:
            yield from _decode_with_pyav(sample, config, piece_frames, tmp.path)


def probe_clips(sample: Sample, config: ReadConfig) -> VideoProbe:
    """What `decode_clips` would give for a sample, without decoding its clips: for the dry run.

    The same code reads the same packets (or decord index) and plans the same clips; one
    frame is decoded, the first the clips need, since the picture's geometry (rotation,
    pixel aspect) is read from a frame. A video too short for a clip is described, with the
    record the run would write as its `problem`; other failures raise SampleError as
    `decode_clips` does. An image is decoded whole (`image.probe_image`).
    """
    if sample.media_type == MEDIA_IMAGE:
        with _placed(sample):
            return probe_image(sample, config)
    with _placed(sample), TempVideoFile(_video_bytes(sample), sample.media_ext, config.tmp_dir) as tmp:
        if config.decoder == "decord" and config.clip_policy in ("first", "uniform"):
            video = _DecordVideo(config, tmp)
            plans, problem = _plans_or_problem(video.starts, video.end, config)
            codec, geometry, starts, timing = video.codec, video.geometry, video.starts, video.timing
            check = video.check
            video.reader = None  # stops decord's thread, which decodes ahead
        else:
            video = PyAVVideo(tmp.path, config)
            try:
                starts, end, timing, check = _read_pyav(video, config)
                plans, problem = _plans_or_problem(starts, end, config)
                video.plan(plans or [np.zeros(1, np.int64)])  # without a clip, the video's first frame
                next(video.clip_frames(0))
                codec, geometry = video.codec, video.geometry
            finally:
                video.close()
        clips = [_clip_info(sample, config, i, indices, starts, timing, geometry, check)
                 for i, indices in enumerate(plans)]
        return VideoProbe(codec, geometry, timing, clips, problem.at(sample.shard, sample.key) if problem else None)


def _plans_or_problem(starts: np.ndarray, end: float, config: ReadConfig) -> tuple[list[np.ndarray], ErrorRecord | None]:
    """The clips, or the clip stage's refusal (a video too short); a video with no usable frames raises."""
    try:
        return plan_clips(starts, end, config), None
    except SampleError as exc:
        if exc.record.stage != STAGE_CLIP:
            raise
        return [], exc.record


def _video_bytes(sample: Sample) -> bytes:
    if not sample.media:
        raise SampleError(ErrorRecord(STAGE_DECODE, "EmptyVideo", "the video part is empty (0 bytes)"))
    return sample.media


@contextmanager
def _placed(sample: Sample) -> Iterator[None]:
    """Any failure inside becomes a SampleError placed at the sample."""
    try:
        yield
    except SampleError as exc:
        raise SampleError(exc.record.at(sample.shard, sample.key)) from exc
    except Exception as exc:  # noqa: BLE001 - a library failed in a way not foreseen: still one sample
        record = ErrorRecord(STAGE_DECODE, "DecodeFailed", describe(exc), shard=sample.shard, key=sample.key)
        raise SampleError(record) from exc


def _read_pyav(video: PyAVVideo, config: ReadConfig) -> tuple[np.ndarray, float, Timing, EndCheck]:
    """Read the packets the clip policy needs: the frames' start times, the video's end, its timing, and
    whether it holds the frames its header claims."""
    if config.clip_policy == "first":
        video.read_first_clip()  # a first clip's cost must not grow with the video's length
    else:
        video.read_all()  # clips are placed by the video's end
    starts, ends = video.frame_times()
    end = video_end(starts, ends) if len(starts) else 0.0
    if video.complete and len(starts):
        return starts, end, measured_timing(starts, end), end_of_read(video.claim, starts, end, video.cut)
    check = end_by_index(video.claim)
    return starts, end, held_timing(video.header_timing(), check), check


def _decode_with_pyav(sample: Sample, config: ReadConfig, piece_frames: int | None,
                      path: str) -> Iterator[ClipPiece | ErrorRecord]:
    video = PyAVVideo(path, config)
    try:
        starts, end, timing, check = _read_pyav(video, config)
        if check.warning:
            yield check.warning.at(sample.shard, sample.key)
        plans = plan_clips(starts, end, config)
        video.plan(plans)
        for clip_index, indices in enumerate(plans):
            frames = video.clip_frames(clip_index)
            info = None
            step = piece_frames or len(indices)
            for start in range(0, len(indices), step):
                chunk = indices[start : start + step]
                try:
                    batch = None
                    for j in range(len(chunk)):
                        rgb = next(frames)
                        if batch is None:
                            batch = np.empty((len(chunk), *rgb.shape), np.uint8)
                        batch[j] = rgb
                        del rgb
                except SampleError as exc:
                    where = f"clip {clip_index}, {_frames(chunk)}: {exc.record.message}"
                    raise SampleError(replace(exc.record, message=where)) from None
                except Exception as exc:  # noqa: BLE001 - FFmpeg's errors on damaged data
                    where = f"clip {clip_index}, {_frames(chunk)}: {describe(exc)}"
                    raise SampleError(ErrorRecord(STAGE_DECODE, "DecodeFailed", where)) from None
                g = video.geometry
                if info is None:
                    info = _clip_info(sample, config, clip_index, indices, starts, timing, g, check)
                batch = rotate(batch, g.rotation)
                if not config.resize_at_decode:
                    out_h, out_w = info.height, info.width
                    batch = center_crop(resize(batch, *cover_size(*g.display_size, out_h, out_w)), out_h, out_w)
                piece = _piece(info, batch, start, start + step >= len(indices))
                del batch
                yield piece
                del piece  # hold at most one piece: the consumer's
            del frames
    finally:
        video.close()


class _DecordVideo:
    """A video opened for decord: its geometry (from PyAV), its frame times and clips, and a reader."""

    def __init__(self, config: ReadConfig, tmp: TempVideoFile):
        self.codec, self.geometry = first_frame_geometry(tmp.path)
        self.threads = config.decode_threads
        display_h, display_w = self.geometry.display_size
        self.out_h, self.out_w = output_size(display_h, display_w, config)
        self.cover_h, self.cover_w = cover_size(display_h, display_w, self.out_h, self.out_w)
        if config.resize_at_decode:
            # The decoder scales in stored orientation; the frames are turned afterwards.
            rotated = self.geometry.rotation in (90, 270)
            self.decode_size = (self.cover_w, self.cover_h) if rotated else (self.cover_h, self.cover_w)
        else:
            self.decode_size = (None, None)
        # A cut file is read from a copy without its packet cut short (`early_end.py`): decord cannot open an
        # mp4 cut inside a frame (its index says so at once), and takes that packet for a frame elsewhere (avi).
        claim = claim_of_file(tmp.path)
        self.path = remux_without_rotation(tmp.path, tmp) if self.geometry.rotation or claim.cut else tmp.path
        self._index(claim)
        if self.check.early and self.path == tmp.path:
            self.path = remux_without_rotation(tmp.path, tmp)
            self._index(claim)

    def _index(self, claim: Claim) -> None:
        self.reader = self.open()
        self.starts, ends = frame_times(self.reader)
        self.end = video_end(self.starts, ends)
        self.timing = measured_timing(self.starts, self.end)
        self.check = end_of_read(claim, self.starts, self.end, claim.cut)

    def open(self) -> decord.VideoReader:
        return open_reader(self.path, *self.decode_size, self.threads, self.codec)


def _decode_with_decord(sample: Sample, config: ReadConfig, piece_frames: int | None,
                        tmp: TempVideoFile) -> Iterator[ClipPiece | ErrorRecord]:
    video = _DecordVideo(config, tmp)
    if video.check.warning:
        yield video.check.warning.at(sample.shard, sample.key)
    plans = plan_clips(video.starts, video.end, config)
    reader, rotation = video.reader, video.geometry.rotation
    for clip_index, indices in enumerate(plans):
        info = _clip_info(sample, config, clip_index, indices, video.starts, video.timing, video.geometry,
                          video.check)
        step = piece_frames or len(indices)
        for start in range(0, len(indices), step):
            chunk = indices[start : start + step]
            is_last = start + step >= len(indices)
            for attempt in range(1 + DECODE_RETRIES):
                try:
                    frames = read_frames(reader, chunk)
                    break
                except SampleError:
                    raise
                except Exception as exc:  # noqa: BLE001 - decord raises DECORDError, not RuntimeError
                    if attempt == DECODE_RETRIES:
                        where = f"clip {clip_index}, {_frames(chunk)}: {describe(exc)}"
                        raise SampleError(ErrorRecord(STAGE_DECODE, "DecodeFailed", where)) from None
                    # decord's decoder thread runs ahead of the frames asked for, so damage
                    # further on can fail this read; a fresh reader seeks straight here.
                    reader = video.open()
            if is_last and clip_index == len(plans) - 1:
                reader = video.reader = None  # nothing more to read: stop decord's thread before the caller's turn
            elif is_last:
                reader.seek(0)  # the next clip seeks anyway: stop decoding ahead meanwhile
            frames = rotate(frames, rotation)
            if not config.resize_at_decode:
                frames = resize(frames, video.cover_h, video.cover_w)
            piece = _piece(info, center_crop(frames, video.out_h, video.out_w), start, is_last)
            del frames
            yield piece
            del piece  # hold at most one piece: the consumer's


def _frames(chunk: np.ndarray) -> str:
    return f"source frames {int(chunk[0])}..{int(chunk[-1])}"


def _clip_info(sample: Sample, config: ReadConfig, clip_index: int, indices: np.ndarray, starts: np.ndarray,
               timing: Timing, geometry: Geometry, check: EndCheck) -> ClipInfo:
    display_h, display_w = geometry.display_size
    out_h, out_w = output_size(display_h, display_w, config)
    return ClipInfo(
        shard=sample.shard,
        key=sample.key,
        media_type=MEDIA_VIDEO,
        clip_index=clip_index,
        frame_indices=indices.tolist(),
        timestamps=starts[indices].tolist(),
        source_fps=timing.fps,
        source_height=display_h,
        source_width=display_w,
        source_num_frames=timing.num_frames,
        height=out_h,
        width=out_w,
        num_frames=len(indices),
        fps=float(config.fps) if config.fps is not None else timing.fps,
        caption=sample.caption,
        meta=sample.meta,
        rotation=geometry.rotation,
        source_frames_estimated=timing.estimated,
        source_ended_early=check.early,
    )


def _piece(info: ClipInfo, frames: np.ndarray, start: int, is_last: bool) -> ClipPiece:
    frames = np.ascontiguousarray(frames)
    if frames.shape[1:] != (info.height, info.width, 3):
        shape = f"frames came out {frames.shape[1:]}, not {(info.height, info.width, 3)}"
        raise SampleError(ErrorRecord(STAGE_DECODE, "DecodeFailed", shape))
    return ClipPiece(info=info, frames=frames, start=start, is_last=is_last)


def sample_clips(sample: Sample, config: ReadConfig) -> Iterator[Clip | ErrorRecord]:
    """The clips of one sample (with its warnings, as `decode_clips` gives them), then an ErrorRecord if it
    failed. Never raises."""
    try:
        for item in decode_clips(sample, config):
            yield item if isinstance(item, ErrorRecord) else Clip(info=item.info, frames=item.frames)
    except SampleError as exc:
        yield exc.record
    except Exception as exc:  # noqa: BLE001
        yield ErrorRecord(STAGE_DECODE, "DecodeFailed", describe(exc), shard=sample.shard, key=sample.key)
