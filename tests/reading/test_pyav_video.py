"""The one-pass PyAV reader itself: what it reads, what it decodes, and that skipping is exact."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.reading import ReadConfig, Sample, decode_clips, pyav_video
from pipeline.reading.clip_sampling import plan_clips, video_end
from pipeline.reading.pyav_video import PyAVVideo
from tests.support.videos import encode, index_frames, read_index, smooth_frames


def config(**kwargs) -> ReadConfig:
    return ReadConfig(**{"resolution": (48, 64), "decoder": "pyav", **kwargs})


def _pyav_clip(path: str, cfg: ReadConfig) -> tuple[PyAVVideo, np.ndarray, list]:
    video = PyAVVideo(path, cfg)
    video.read_first_clip() if cfg.clip_policy == "first" else video.read_all()
    starts, ends = video.frame_times()
    plans = plan_clips(starts, video_end(starts, ends), cfg)
    video.plan(plans)
    return video, plans, [np.stack([f.copy() for f in video.clip_frames(i)]) for i in range(len(plans))]


@pytest.mark.parametrize(
    ("codec", "options"),
    [
        ("libx264", {"bf": "3", "g": "30", "x264-params": "b-pyramid=0"}),  # every B-frame a non-reference frame
        ("libx265", {"g": "30", "x265-params": "bframes=3:b-pyramid=0:log-level=error"}),
    ],
)
@pytest.mark.parametrize("clips", ["first", "uniform:2"])
def test_frames_nothing_needs_are_not_decoded_and_the_output_is_identical(tmp_path, monkeypatch, clips, codec, options):
    path = tmp_path / "b.mp4"
    path.write_bytes(encode(smooth_frames(120, 64, 96), codec=codec, options=options))
    cfg = config(num_frames=9, fps=10, clips=clips, resolution=(64, 64))  # 25 -> 10 fps: most frames unused
    skipping, plans, frames = _pyav_clip(str(path), cfg)
    monkeypatch.setattr(pyav_video, "SKIPPING_DECODERS", frozenset())
    plain, plans_again, frames_again = _pyav_clip(str(path), cfg)
    assert [p.tolist() for p in plans] == [p.tolist() for p in plans_again]
    for a, b in zip(frames, frames_again):
        assert np.array_equal(a, b)
    assert skipping.frames_decoded < plain.frames_decoded
    skipping.close()
    plain.close()


def test_a_first_clip_reads_only_the_start_of_a_long_video(tmp_path):
    path = tmp_path / "long.mp4"
    path.write_bytes(encode(index_frames(250), options={"bf": "3", "g": "50"}))
    cfg = config(num_frames=17, fps=12.5)  # 33 source frames
    video, plans, (frames,) = _pyav_clip(str(path), cfg)
    assert plans[0].tolist() == list(range(0, 34, 2)) and read_index(frames) == plans[0].tolist()
    assert not video.complete and video.packets_read <= 34 + pyav_video.REORDER_MARGIN + 4
    assert video.frames_decoded < 50  # from the first keyframe up to the clip's last frame
    video.close()
    sample = Sample("s", "k", path.read_bytes(), "mp4", None, None)
    (piece,) = decode_clips(sample, cfg)
    assert piece.info.source_num_frames == 250 and piece.info.source_fps == pytest.approx(25)  # from the mp4 header


@pytest.mark.parametrize("gop", ["closed", "open"])
def test_a_clip_starting_anywhere_decodes_like_front_to_back(tmp_path, gop):
    # In an open GOP, frames shown before a keyframe but decoded after it refer to the GOP
    # before: a clip starting on one of them must start decoding a GOP earlier.
    options = {"bf": "3", "g": "12", **({"x264-params": "open-gop=1"} if gop == "open" else {})}
    path = tmp_path / "v.mp4"
    path.write_bytes(encode(index_frames(48), options=options))
    front_to_back, _, (reference,) = _pyav_clip(str(path), config(num_frames=45))
    front_to_back.close()
    assert read_index(reference) == list(range(45))
    for start in range(40):
        video = PyAVVideo(str(path), config(num_frames=5))
        video.read_all()
        video.frame_times()
        video.plan([np.arange(start, start + 5)])
        frames = np.stack([f.copy() for f in video.clip_frames(0)])
        video.close()
        assert np.array_equal(frames, reference[start : start + 5]), start


@pytest.mark.parametrize(("container", "codec"), [("mp4", "libx264"), ("matroska", "libx264"), ("webm", "libvpx-vp9")])
def test_a_first_clip_takes_the_frame_count_from_the_header(container, codec):
    # the video is not read to its end: count and rate come from the container (mkv and webm
    # have no frame count: their duration x average rate)
    video = encode(index_frames(250, 32, 64), container=container, codec=codec, options={"g": "250"} if codec == "libx264" else None)
    ext = {"matroska": "mkv"}.get(container, container)
    (piece,) = decode_clips(Sample("s", "k", video, ext, None, None), config(num_frames=9, resolution=(32, 64)))
    assert piece.info.frame_indices == list(range(9)) and read_index(piece.frames) == list(range(9))
    assert piece.info.source_num_frames == 250 and piece.info.source_fps == pytest.approx(25, rel=1e-3)
