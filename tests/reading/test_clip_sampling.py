"""Clip choice as pure functions of frame timestamps (real videos: test_decode.py)."""

import numpy as np
import pytest

from pipeline.reading import ReadConfig, SampleError
from pipeline.reading.clip_sampling import longest_valid_length, plan_clips, source_fps, video_end


def config(**kwargs) -> ReadConfig:
    return ReadConfig(resolution=(64, 64), **kwargs)


def cfr(n: int, fps: float) -> tuple[np.ndarray, float]:
    starts = np.arange(n) / fps
    return starts, video_end(starts, starts + 1 / fps)


def plans(starts, end, **kwargs) -> list[list[int]]:
    return [p.tolist() for p in plan_clips(starts, end, config(**kwargs))]


@pytest.mark.parametrize(
    ("available", "tc", "cap", "expected"),
    [(17, 4, None, 17), (20, 4, None, 17), (16, 4, None, 13), (1, 4, None, 1), (0, 4, None, 0), (100, 8, 40, 33), (100, 4, 33, 33)],
)
def test_longest_valid_length(available, tc, cap, expected):
    assert longest_valid_length(available, tc, cap) == expected


def test_first_all_uniform_at_source_rate():
    starts, end = cfr(40, 25)
    assert plans(starts, end, num_frames=9) == [list(range(0, 9))]
    assert plans(starts, end, num_frames=9, clips="all") == [list(range(s, s + 9)) for s in (0, 9, 18, 27)]
    # uniform: first clip at the start, last clip ending at the last frame
    assert [p[0] for p in plans(starts, end, num_frames=9, clips="uniform:3")] == [0, 16, 31]
    assert [p[0] for p in plans(starts, end, num_frames=9, clips="uniform:1")] == [15]
    # more clips asked than distinct starts: identical clips are kept once
    assert [p[0] for p in plans(*cfr(10, 25), num_frames=9, clips="uniform:5")] == [0, 1]


def test_whole_takes_longest_valid_length_up_to_max_frames():
    starts, end = cfr(40, 25)
    assert plans(starts, end, num_frames=9, clips="whole") == [list(range(37))]  # 37 = 1 + 9*4 <= 40
    assert plans(starts, end, num_frames=9, clips="whole", max_frames=30) == [list(range(29))]
    assert plans(starts, end, num_frames=9, clips="whole", max_frames=30, temporal_compression=8) == [list(range(25))]


def test_short_video_skipped_or_shortened():
    starts, end = cfr(15, 25)
    with pytest.raises(SampleError) as info:
        plan_clips(starts, end, config(num_frames=17))
    assert (info.value.record.stage, info.value.record.error_type) == ("clip", "VideoTooShort")
    assert "15 frames available, a clip needs 17" in info.value.record.message
    assert plans(starts, end, num_frames=17, short_videos="shorten") == [list(range(13))]
    assert plans(*cfr(1, 25), num_frames=17, short_videos="shorten") == [[0]]


def test_target_fps_downsamples_by_time():
    starts, end = cfr(90, 30)  # 3 s at 30 fps
    assert plans(starts, end, num_frames=5, fps=10) == [[0, 3, 6, 9, 12]]
    # 30 -> 12 fps: on-screen frame at t = k/12, i.e. floor(k * 2.5)
    assert plans(starts, end, num_frames=5, fps=12) == [[0, 2, 5, 7, 10]]
    # all clips at 10 fps: 30 grid points, 6 clips of 5, non-overlapping in time
    clips = plans(starts, end, num_frames=5, fps=10, clips="all")
    assert len(clips) == 6 and clips[-1] == [75, 78, 81, 84, 87]


def test_variable_frame_rate_is_sampled_evenly_in_time():
    # frames of 40, 40, 100, 20, 20, 60, 120, 40 ms ...
    starts = np.array([0.0, 0.04, 0.08, 0.18, 0.20, 0.22, 0.28, 0.40, 0.44])
    end = video_end(starts, starts + 0.04)  # 0.48
    # grid 0, .04, ... .40 at 25 fps; each takes the frame on screen then
    expected = [0, 1, 2, 2, 2, 4, 5, 6, 6, 6, 7]
    assert plans(starts, end, num_frames=9, fps=25, short_videos="shorten", clips="whole") == [expected[:9]]
    assert plans(starts, end, num_frames=9, fps=25, clips="first") == [expected[:9]]
    # without a target fps the source frames are taken as they come
    assert plans(starts, end, num_frames=9) == [list(range(9))]
    assert source_fps(starts, end) == pytest.approx(9 / 0.48)


def test_float32_timestamps_still_hit_exact_frames():
    # decord reports float32 seconds; a grid time must not slip one frame back
    starts = (np.arange(3000) / 30).astype(np.float32).astype(np.float64)
    end = video_end(starts, starts + np.float32(1 / 30))
    clip = plans(starts, end, num_frames=5, fps=30, clips="uniform:1")[0]
    assert clip == list(range(clip[0], clip[0] + 5))
    assert plans(starts, end, num_frames=5, fps=30, clips="all")[-1] == list(range(2995, 3000))


def test_unsorted_timestamps_are_a_decode_error_with_target_fps():
    with pytest.raises(SampleError, match="not in order"):
        plan_clips(np.array([0.0, 0.08, 0.04]), 0.12, config(num_frames=1, fps=25))
