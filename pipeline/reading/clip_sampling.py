"""Which source frames make up each clip. Pure functions of timestamps and config.

With a target fps the clip is a grid of times `t0 + j / fps`, and each grid time
takes the frame on screen at that moment (the last frame starting at or before
it), so variable-frame-rate videos come out evenly spaced in time. Without a
target fps, clips are runs of consecutive source frames. Clip lengths are always
1 + a multiple of the model's temporal compression.
"""

from __future__ import annotations

import math

import numpy as np

from .config import ReadConfig
from .records import STAGE_CLIP, STAGE_DECODE, ErrorRecord, SampleError

# A frame that starts less than this fraction of a frame interval after a grid
# time counts as on screen at that time: absorbs rounding in stored timestamps.
TIME_TOLERANCE = 0.1


def longest_valid_length(available: int, temporal_compression: int, cap: int | None = None) -> int:
    """The longest 1 + k * temporal_compression <= available (and <= cap); 0 if none."""
    limit = available if cap is None else min(available, cap)
    if limit < 1:
        return 0
    return 1 + ((limit - 1) // temporal_compression) * temporal_compression


def video_end(start_times: np.ndarray, end_times: np.ndarray) -> float:
    """When the last frame stops being shown (its end, or its start + a typical interval)."""
    last_start, last_end = float(start_times[-1]), float(end_times[-1])
    if last_end > last_start:
        return last_end
    return last_start + typical_interval(start_times)


def typical_interval(start_times: np.ndarray) -> float:
    """The median gap between frame starts (1.0 for a single frame)."""
    gaps = np.diff(start_times)
    gaps = gaps[gaps > 0]
    return float(np.median(gaps)) if gaps.size else 1.0


def source_fps(start_times: np.ndarray, end: float) -> float:
    """Frames per second over the whole video: frame count / duration."""
    duration = end - float(start_times[0])
    return len(start_times) / duration if duration > 0 else 0.0


def plan_clips(start_times: np.ndarray, end: float, config: ReadConfig) -> list[np.ndarray]:
    """Source frame indices of every clip the config asks for, in order.

    Raises SampleError (stage "clip") for a video shorter than one clip when
    `short_videos="skip"`.
    """
    start_times = np.asarray(start_times, dtype=np.float64)
    n = len(start_times)
    if n == 0:
        raise SampleError(ErrorRecord(STAGE_DECODE, "NoFrames", "the video has no frames"))
    if config.fps is None:
        available = n
        to_frames = _consecutive
    else:
        if np.any(np.diff(start_times) < 0):
            raise SampleError(ErrorRecord(STAGE_DECODE, "BadTimestamps", "frame timestamps are not in order"))
        step = 1.0 / config.fps
        tolerance = TIME_TOLERANCE * typical_interval(start_times)
        t0 = float(start_times[0])
        available = max(1, math.floor((end - tolerance - t0) / step + 1e-9) + 1)

        def to_frames(grid: np.ndarray) -> np.ndarray:
            times = t0 + grid * step
            return np.maximum(np.searchsorted(start_times, times + tolerance, side="right") - 1, 0)

    length = config.num_frames
    tc = config.temporal_compression
    if available < length:
        if config.short_videos == "skip":
            unit = "frames" if config.fps is None else f"frames at {config.fps:g} fps"
            raise SampleError(ErrorRecord(
                STAGE_CLIP, "VideoTooShort",
                f"{available} {unit} available, a clip needs {length} (short_videos='skip')",
            ))
        length = longest_valid_length(available, tc)
        starts = [0]
    else:
        starts, length = _clip_starts(available, length, config)
    return [to_frames(np.arange(s, s + length, dtype=np.int64)) for s in starts]


def _consecutive(grid: np.ndarray) -> np.ndarray:
    return grid


def _clip_starts(available: int, length: int, config: ReadConfig) -> tuple[list[int], int]:
    """Start positions on the output grid, and the clip length (changes only in whole mode)."""
    policy = config.clip_policy
    if policy == "first":
        return [0], length
    if policy == "all":
        return [k * length for k in range(available // length)], length
    if policy == "whole":
        return [0], longest_valid_length(available, config.temporal_compression, config.max_frames)
    count = config.clip_count
    room = available - length  # the last possible start
    if count == 1:
        return [room // 2], length
    # Evenly spread from the start to the end, rounded to the grid; clips the
    # video is too short to separate would be identical, so they are kept once.
    starts = sorted({(2 * i * room + (count - 1)) // (2 * (count - 1)) for i in range(count)})
    return starts, length
