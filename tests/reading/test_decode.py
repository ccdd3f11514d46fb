"""decode_clips on real (tiny) videos: frames, timing, orientation, formats, failures.

Every test runs with both decoders (`ReadConfig.decoder`): the frames chosen and what
they show must not depend on which one decodes.
"""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
import tracemalloc
from pathlib import Path

import av
import decord
import numpy as np
import pytest

from pipeline.reading import Clip, ClipPiece, ErrorRecord, ReadConfig, Sample, SampleError, decode_clips, sample_clips
from tests.support.videos import (
    BACKGROUND,
    CORNER_COLOR,
    corner_frames,
    encode,
    encode_av1,
    ffmpeg,
    ffmpeg_first_frame,
    ffmpeg_testsrc,
    index_frames,
    random_bytes,
    read_index,
    smooth_frames,
    solid_frames,
    truncated,
)


def sample(video: bytes, ext: str = "mp4", key: str = "k") -> Sample:
    return Sample(shard="mem://shard.tar", key=key, media=video, media_ext=ext, caption="cap", meta='{"id": 7}')


DECODER = "pyav"  # set for each test by the `decoder` fixture


@pytest.fixture(params=["pyav", "decord"], autouse=True)
def decoder(request, monkeypatch) -> str:
    monkeypatch.setattr(sys.modules[__name__], "DECODER", request.param)
    return request.param


def config(**kwargs) -> ReadConfig:
    return ReadConfig(**{"resolution": (48, 64), "decoder": DECODER, **kwargs})


def decode(video: bytes, ext: str = "mp4", piece_frames=None, **kwargs) -> list[ClipPiece]:
    return list(decode_clips(sample(video, ext), config(**kwargs), piece_frames=piece_frames))


def error_of(video: bytes, ext: str = "mp4", **kwargs) -> ErrorRecord:
    with pytest.raises(SampleError) as info:
        decode(video, ext, **kwargs)
    return info.value.record


def clips_and_error(s: Sample, cfg: ReadConfig) -> tuple[list[Clip], ErrorRecord | None]:
    """What `sample_clips` gives for one sample: its clips, then its error if it failed."""
    items = list(sample_clips(s, cfg))
    errors = [item for item in items if isinstance(item, ErrorRecord)]
    assert len(errors) <= 1 and all(isinstance(item, Clip) for item in items[: len(items) - len(errors)])
    return items[: len(items) - len(errors)], (errors[0] if errors else None)


@pytest.fixture(scope="module")
def indexed_video() -> bytes:
    """100 frames at 25 fps with B-frames and a keyframe every 12 frames; frame i shows i."""
    return encode(index_frames(100), options={"g": "12", "bf": "3"})


def test_clips_hold_exactly_the_frames_they_name(indexed_video):
    pieces = decode(indexed_video, num_frames=17, clips="all")
    assert [p.info.frame_indices for p in pieces] == [list(range(s, s + 17)) for s in (0, 17, 34, 51, 68)]
    for piece in pieces:
        assert piece.frames.dtype == np.uint8 and piece.frames.flags.c_contiguous
        assert piece.frames.shape == (17, 48, 64, 3)
        assert read_index(piece.frames) == piece.info.frame_indices
        assert piece.start == 0 and piece.is_last


def test_provenance(indexed_video):
    (piece,) = decode(indexed_video, num_frames=9, fps=12.5, clips="uniform:1")
    info = piece.info
    assert (info.shard, info.key, info.clip_index) == ("mem://shard.tar", "k", 0)
    # 100 frames at 25 fps = 50 grid points at 12.5 fps; the middle clip starts at 20 -> frame 40
    assert info.frame_indices == list(range(40, 58, 2))
    assert info.timestamps == pytest.approx([i / 25 for i in info.frame_indices], abs=1e-6)
    assert read_index(piece.frames) == info.frame_indices
    assert (info.source_fps, info.fps) == (pytest.approx(25.0), 12.5)
    assert (info.source_height, info.source_width, info.source_num_frames) == (48, 64, 100)
    assert (info.height, info.width, info.num_frames) == (48, 64, 9)
    assert (info.caption, info.meta, info.rotation) == ("cap", '{"id": 7}', 0)


def test_overlapping_uniform_clips_each_hold_their_frames():
    video = encode(index_frames(20), options={"g": "6", "bf": "2"})
    pieces = decode(video, num_frames=9, clips="uniform:6")
    assert [p.info.frame_indices[0] for p in pieces] == [0, 2, 4, 7, 9, 11]  # overlapping: decoded again or kept
    for piece in pieces:
        assert read_index(piece.frames) == piece.info.frame_indices


def test_variable_frame_rate_video_gives_evenly_timed_frames():
    # frame durations cycle through 20, 40, 100 ms
    durations = [0.02, 0.04, 0.1] * 20
    times = np.concatenate([[0.0], np.cumsum(durations)])[:60].round(3)
    video = encode(index_frames(60), timestamps=times.tolist(), options={"bf": "2"})
    (piece,) = decode(video, num_frames=17, fps=20)
    # oracle: the frame on screen at each multiple of 50 ms
    grid = np.arange(17) * 0.05
    expected = [int(np.searchsorted(times, t + 1e-9, side="right") - 1) for t in grid]
    assert expected == [0, 1, 2, 2, 4, 5, 5, 7, 8, 8, 10, 11, 11, 12, 14, 14, 15]  # 0.5, 0.7, 0.8 s hit frame starts
    assert piece.info.frame_indices == expected
    assert read_index(piece.frames) == expected
    assert piece.info.timestamps == pytest.approx(times[expected].tolist(), abs=1e-4)
    assert 60 / (times[-1] + 0.1) <= piece.info.source_fps <= 60 / times[-1]


@pytest.mark.parametrize(
    ("rotation", "red_at", "container", "resize_at_decode"),
    [
        (90, "bottom-left", "mp4", True),
        (180, "bottom-right", "mp4", True),
        (270, "top-right", "mp4", True),
        (90, "bottom-left", "matroska", True),
        (270, "top-right", "mov", False),
        (90, "bottom-left", "mp4", False),
    ],
)
def test_rotated_video_comes_out_upright(rotation, red_at, container, resize_at_decode):
    ext = {"matroska": "mkv"}.get(container, container)
    video = encode(corner_frames(10, height=48, width=64), rotation=rotation, container=container)
    expected = ffmpeg_first_frame(video, "." + ext)  # the ffmpeg command line applies the rotation itself
    out_h, out_w = (64, 48) if rotation in (90, 270) else (48, 64)
    assert expected.shape == (out_h, out_w, 3)
    (piece,) = decode(video, ext, num_frames=9, resolution=(out_h, out_w), resize_at_decode=resize_at_decode)
    assert (piece.info.source_height, piece.info.source_width, piece.info.rotation) == (out_h, out_w, rotation)
    frame = piece.frames[0]
    assert np.abs(frame.astype(int) - expected).mean() < 2
    red = (frame[..., 0] > 200) & (frame[..., 1] < 80) & (frame[..., 2] < 80)
    ys, xs = np.nonzero(red)
    where = ("top" if ys.mean() < out_h / 2 else "bottom") + "-" + ("left" if xs.mean() < out_w / 2 else "right")
    assert where == red_at


@pytest.mark.parametrize(("container", "ext"), [("mp4", "mp4"), ("matroska", "mkv"), ("mov", "mov"), ("mp4", "webm")])
def test_rotated_videos_keep_every_frame(container, ext):
    # the rotation is removed by remuxing: no packet may be lost or reordered on the way
    # (the last case is an mp4 named .webm: the container is what FFmpeg finds, not the name)
    video = encode(index_frames(40), rotation=270, container=container, options={"bf": "3", "g": "10"})
    pieces = decode(video, ext, num_frames=13, clips="all", resolution=(64, 48))
    assert [p.info.frame_indices[0] for p in pieces] == [0, 13, 26]
    for piece in pieces:
        upright_to_stored = np.rot90(piece.frames, k=-3, axes=(1, 2))
        assert read_index(upright_to_stored) == piece.info.frame_indices


@pytest.mark.parametrize("resize_at_decode", [True, False])
def test_rotated_video_resized_with_swapped_sides(resize_at_decode):
    video = encode(corner_frames(10, height=48, width=64), rotation=90)
    (piece,) = decode(video, num_frames=1, resolution=(128, 96), resize_at_decode=resize_at_decode)  # 2x up
    frame = piece.frames[0]
    assert frame.shape == (128, 96, 3)
    assert np.allclose(frame[120, 10], CORNER_COLOR, atol=30) and np.allclose(frame[10, 80], BACKGROUND, atol=30)


COLOR = (200, 60, 30)


@pytest.mark.parametrize(
    ("name", "codec", "pix_fmt", "container", "size"),
    [
        ("10-bit h264", "libx264", "yuv420p10le", "mp4", (48, 64)),
        ("10-bit hevc", "libx265", "yuv420p10le", "mp4", (48, 64)),
        ("10-bit prores 4:2:2", "prores_ks", "yuv422p10le", "mov", (48, 64)),
        ("yuv444", "libx264", "yuv444p", "mp4", (48, 64)),
        ("odd size yuv444", "libx264", "yuv444p", "mp4", (47, 63)),
        ("odd size ffv1", "ffv1", "yuv420p", "matroska", (45, 61)),
        ("mpeg4 in avi", "mpeg4", "yuv420p", "avi", (48, 64)),
        ("full-range mjpeg", "mjpeg", "yuvj420p", "avi", (48, 64)),
        ("vp9 in webm", "libvpx-vp9", "yuv420p", "webm", (48, 64)),
    ],
)
def test_pixel_formats_come_out_rgb_uint8(name, codec, pix_fmt, container, size):
    ext = {"matroska": "mkv"}.get(container, container)
    video = encode(solid_frames(12, *size, color=COLOR), codec=codec, pix_fmt=pix_fmt, container=container)
    (piece,) = decode(video, ext, num_frames=9, resolution=(48, 64))
    assert piece.frames.dtype == np.uint8 and piece.frames.shape == (9, 48, 64, 3)
    assert (piece.info.source_height, piece.info.source_width) == size
    mean = piece.frames.reshape(-1, 3).mean(axis=0)
    assert np.allclose(mean, COLOR, atol=8), f"{name}: {mean}"


@pytest.mark.parametrize("pix_fmt", ["gray", "gray10le"])
def test_gray_video_gives_equal_rgb_channels(pix_fmt):
    video = encode(solid_frames(12, 48, 64, color=COLOR), pix_fmt=pix_fmt)
    (piece,) = decode(video, num_frames=9)
    luma = 0.299 * COLOR[0] + 0.587 * COLOR[1] + 0.114 * COLOR[2]
    mean = piece.frames.reshape(-1, 3).mean(axis=0)
    assert np.allclose(mean, luma, atol=6), mean


def test_webm_from_the_ffmpeg_command_line():
    video = ffmpeg_testsrc(1.0, size="96x64", fps=24, codec_args=("-c:v", "libvpx-vp9", "-b:v", "200k"), suffix=".webm")
    (piece,) = decode(video, "webm", num_frames=17, resolution=(64, 64))
    assert piece.frames.shape == (17, 64, 64, 3) and piece.info.source_fps == pytest.approx(24, rel=0.01)
    assert piece.frames.std() > 20  # the moving test pattern, not a blank frame


def test_buckets_pick_nearest_aspect_and_crop():
    buckets = ((64, 64), (48, 80), (80, 48))
    wide = encode(solid_frames(10, 36, 64))  # aspect 1.78 -> 48x80 (1.67), not 64x64
    tall = encode(solid_frames(10, 64, 40))  # aspect 0.625 -> 80x48 (0.6)
    square = encode(solid_frames(10, 50, 52))
    for video, expected in ((wide, (48, 80)), (tall, (80, 48)), (square, (64, 64))):
        (piece,) = decode(video, num_frames=5, resolution=None, buckets=buckets)
        assert piece.frames.shape[1:3] == expected and (piece.info.height, piece.info.width) == expected


def test_center_crop_keeps_the_middle():
    frames = np.zeros((5, 48, 96, 3), np.uint8)
    frames[:, :, :24] = (255, 0, 0)  # left quarter red, right quarter green, middle blue
    frames[:, :, 24:72] = (0, 0, 255)
    frames[:, :, 72:] = (0, 255, 0)
    (piece,) = decode(encode(frames, pix_fmt="yuv444p"), num_frames=5, resolution=(48, 48))
    mean = piece.frames[:, 4:-4, 4:-4].reshape(-1, 3).mean(axis=0)
    assert np.allclose(mean, (0, 0, 255), atol=10)


@pytest.mark.parametrize("clips", ["first", "all"])  # decord's scaler, PyAV's scaler
def test_resize_at_decode_matches_torch_resize(clips):
    video = encode(smooth_frames(9, 240, 320))
    fast = decode(video, num_frames=9, resolution=(96, 96), clips=clips)[0].frames
    torch_resized = decode(video, num_frames=9, resolution=(96, 96), clips=clips, resize_at_decode=False)[0].frames
    mse = np.mean((fast.astype(float) - torch_resized.astype(float)) ** 2)
    assert 10 * np.log10(255**2 / mse) > 32


def test_pixel_aspect_ratio_is_honoured():
    # stored 64x48 with 2:1 pixels is shown as 128x48
    video = ffmpeg_testsrc(0.5, size="64x48", codec_args=("-vf", "setsar=2/1", "-c:v", "libx264"))
    (piece,) = decode(video, num_frames=5, resolution=(48, 48))
    assert (piece.info.source_height, piece.info.source_width) == (48, 128)


# -- long clips, pieces and memory -----------------------------------------------------------


def test_whole_video_in_pieces_reproduces_the_one_shot_read(indexed_video):
    (whole,) = decode(indexed_video, num_frames=17, clips="whole", max_frames=90)
    assert whole.info.num_frames == 89 and read_index(whole.frames) == list(range(89))
    for k in (1, 7, 16, 89, 500):
        pieces = decode(indexed_video, piece_frames=k, num_frames=17, clips="whole", max_frames=90)
        assert all(len(p.frames) <= k for p in pieces)
        assert [p.start for p in pieces] == list(range(0, 89, k))
        assert [p.is_last for p in pieces] == [False] * (len(pieces) - 1) + [True]
        assert all(p.info == whole.info for p in pieces)
        assert np.array_equal(np.concatenate([p.frames for p in pieces]), whole.frames)


def test_pieces_of_several_clips_with_target_fps(indexed_video):
    one_shot = decode(indexed_video, num_frames=9, fps=10, clips="all")
    pieces = decode(indexed_video, piece_frames=4, num_frames=9, fps=10, clips="all")
    assert len(one_shot) == 4 and len(pieces) == 4 * 3
    for i, clip in enumerate(one_shot):
        mine = [p for p in pieces if p.info.clip_index == i]
        assert [len(p.frames) for p in mine] == [4, 4, 1]
        assert np.array_equal(np.concatenate([p.frames for p in mine]), clip.frames)


def test_memory_is_bounded_by_the_piece_not_the_video():
    frames = 250
    video = encode(index_frames(frames, height=64, width=64))
    cfg = config(resolution=(64, 64), num_frames=9, clips="whole")
    piece_bytes = 8 * 64 * 64 * 3  # 98 KB; the whole clip is 249 frames = 3 MB
    tracemalloc.start()
    try:
        count = 0
        for piece in decode_clips(sample(video), cfg, piece_frames=8):
            assert len(piece.frames) <= 8
            count += len(piece.frames)
            del piece
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 249
    assert peak < 6 * piece_bytes + 256 * 1024, peak  # a few pieces' worth, never the 3 MB clip


# -- bad videos ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "ext", "error_type"),
    [
        (lambda: b"", "mp4", "EmptyVideo"),
        (lambda: random_bytes(5000), "mp4", "UnreadableVideo"),
        (lambda: truncated(encode(index_frames(30)), 0.5), "mp4", "UnreadableVideo"),  # index at the end: lost
        (lambda: encode(index_frames(5)), "mp4", "VideoTooShort"),
    ],
    ids=["empty", "random-bytes", "truncated-mp4", "too-short"],
)
def test_bad_videos_raise_sample_errors(make, ext, error_type):
    with pytest.raises(SampleError) as info:
        decode(make(), ext, num_frames=9)
    record = info.value.record
    stage = "clip" if error_type == "VideoTooShort" else "decode"
    assert (record.shard, record.key, record.stage, record.error_type) == ("mem://shard.tar", "k", stage, error_type)
    assert "/tmp/" not in record.message  # no temp file names in records
    assert pickle.loads(pickle.dumps(info.value)).record == record  # it crosses Ray whole


def test_audio_only_file_has_no_video_stream():
    audio = ffmpeg(["-f", "lavfi", "-i", "sine=frequency=440:duration=0.5", "-c:a", "aac"], ".mp4")
    error = error_of(audio)
    assert (error.stage, error.error_type) == ("decode", "NoVideoStream")


def test_damage_mid_video_keeps_the_clips_before_it():
    video = encode(smooth_frames(60, 48, 64), faststart=True, options={"g": "10"})
    with av.open(io.BytesIO(video)) as container:
        packets = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
    pos, size = packets[40]  # a packet that clip 4 (frames 36..44) needs
    damaged = video[:pos] + b"\xff" * size + video[pos + size :]
    cfg = config(num_frames=9, clips="all")
    intact, _ = clips_and_error(sample(video), cfg)
    clips, error = clips_and_error(sample(damaged), cfg)
    # "all" clips are decoded front to back in the calling thread: the damage is met exactly
    # where it is (decord's read-ahead thread could meet it while an earlier clip is read)
    assert [c.info.clip_index for c in clips] == [0, 1, 2, 3]
    for clip, reference in zip(clips, intact):
        assert np.array_equal(clip.frames, reference.frames)
    assert (error.stage, error.error_type) == ("decode", "DecodeFailed")
    assert error.message.startswith("clip 4, source frames 36..44: InvalidDataError")


def test_truncated_mkv_keeps_the_frames_before_the_cut():
    video = truncated(encode(index_frames(60), container="matroska"), 0.8)
    warning, *pieces = decode(video, "mkv", num_frames=9, clips="all")  # the warning: test_early_end.py
    assert (warning.error_type, warning.level) == ("EndedEarly", "warning")
    assert 2 <= len(pieces) < 60 // 9
    for piece in pieces:
        assert read_index(piece.frames) == piece.info.frame_indices


def test_short_video_shortened_when_asked():
    (piece,) = decode(encode(index_frames(11)), num_frames=17, short_videos="shorten")
    assert piece.info.frame_indices == list(range(9)) and read_index(piece.frames) == list(range(9))


def test_a_single_frame_video():
    (piece,) = decode(encode(index_frames(1)), num_frames=17, short_videos="shorten", fps=8)
    assert piece.info.frame_indices == [0] and piece.frames.shape == (1, 48, 64, 3)


def test_samples_clips_and_errors_are_picklable(indexed_video):
    s = sample(indexed_video)
    clips, error = clips_and_error(pickle.loads(pickle.dumps(s)), config(num_frames=9, clips="uniform:2"))
    clips = pickle.loads(pickle.dumps(clips))
    assert error is None and [c.info.frame_indices[0] for c in clips] == [0, 91]
    clips, error = clips_and_error(sample(b"not a video"), config())
    error = pickle.loads(pickle.dumps(error))
    assert clips == [] and error.error_type == "UnreadableVideo" and error.key == "k"


def test_temp_files_are_removed(tmp_path, indexed_video, decoder):
    rotated = encode(corner_frames(10), rotation=90)
    for video in (indexed_video, rotated, b"garbage", encode(index_frames(3))):
        clips_and_error(sample(video), config(num_frames=9, tmp_dir=str(tmp_path)))
    pieces = decode_clips(sample(rotated), config(num_frames=9, tmp_dir=str(tmp_path)), piece_frames=2)
    next(pieces)
    # while in use: the video, and for decord its copy remuxed without the rotation
    assert len(list(tmp_path.iterdir())) == (2 if decoder == "decord" else 1)
    pieces.close()  # a consumer that stops early
    assert list(tmp_path.iterdir()) == []


def test_piece_frames_must_be_positive(indexed_video):
    with pytest.raises(ValueError, match="piece_frames"):
        next(decode_clips(sample(indexed_video), config(), piece_frames=0))


RSS_SCRIPT = """
import os, resource, sys, time
from pipeline.reading import ReadConfig, Sample, decode_clips

def rss_kb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024

path, clips, piece_frames, pause, decoder = sys.argv[1], sys.argv[2], int(sys.argv[3]) or None, float(sys.argv[4]), sys.argv[5]
sample = Sample("s", "k", open(path, "rb").read(), "mp4", None, None)
warm_up = ReadConfig(resolution=(256, 256), num_frames=17, decoder=decoder)  # loads the libraries, sizes the buffers
for piece in decode_clips(sample, warm_up, piece_frames=16):
    del piece
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
count, pause_growth = 0, 0
for piece in decode_clips(sample, ReadConfig(resolution=(256, 256), num_frames=33, clips=clips, decoder=decoder), piece_frames=piece_frames):
    count += len(piece.frames)
    held = rss_kb()
    time.sleep(pause)  # a consumer that takes its time, like an encoder
    pause_growth = max(pause_growth, rss_kb() - held)
    del piece
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(count, after - before, pause_growth)
"""


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    """1000 frames: 197 MB at 256x256, 262 MB at the decoder's 256x341 before cropping."""
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    path.write_bytes(encode(smooth_frames(1000, 48, 64), options={"preset": "ultrafast"}))
    return path


@pytest.mark.parametrize(
    ("clips", "piece_frames", "pause", "frames"),
    [("whole", 16, 0.02, 997), ("first", 0, 1.0, 33), ("uniform:3", 0, 0.3, 99), ("all", 33, 0.002, 990)],
)
@pytest.mark.slow
def test_process_memory_stays_flat_while_the_consumer_works(long_video, clips, piece_frames, pause, frames, decoder):
    # RSS of a fresh process, so the decoders' buffers in C count too. decord's decoder thread,
    # left running while the consumer held a piece, used to decode the rest of the video into
    # memory meanwhile (+90 to +200 MB here); read in one piece, the peak grows by ~500 MB.
    repo = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-c", RSS_SCRIPT, str(long_video), clips, str(piece_frames), str(pause), decoder]
    run = subprocess.run(command, capture_output=True, text=True, check=True, cwd=repo)
    count, peak_growth_kb, pause_growth_kb = map(int, run.stdout.split())
    assert count == frames
    assert pause_growth_kb / 1024 < 10, run.stdout  # nothing is decoded while the consumer works
    if clips in ("all", "whole") or decoder == "pyav":
        # decoded in the calling thread: the peak is a few pieces. (decord's reads, in the other
        # modes, can run ahead by up to a keyframe interval while they last.)
        assert peak_growth_kb / 1024 < 40, run.stdout


# -- codecs decord 0.6 cannot read, and the one-pass PyAV reader ------------------------------

DECORD_HAS_AV1 = not decord.__version__.startswith("0.")  # decord 0.6 bundles FFmpeg 4.1 without an AV1 decoder


@pytest.mark.parametrize("clips", ["first", "uniform:2", "all"])
def test_av1_video_gives_its_frames(decoder, clips):
    video = encode_av1(index_frames(30))
    if decoder == "decord" and clips != "all" and not DECORD_HAS_AV1:
        error = error_of(video, num_frames=9, clips=clips)
        assert (error.stage, error.error_type) == ("decode", "UnsupportedCodec")
        assert "cannot open this libdav1d video" in error.message
        return
    pieces = decode(video, num_frames=9, clips=clips, resolution=(48, 64))
    assert [p.info.frame_indices[0] for p in pieces] == {"first": [0], "uniform:2": [0, 21], "all": [0, 9, 18]}[clips]
    for piece in pieces:
        assert read_index(piece.frames) == piece.info.frame_indices
        assert piece.info.source_num_frames == 30


def test_truncated_faststart_mp4_keeps_the_frames_before_the_cut(decoder):
    video = truncated(encode(index_frames(30), faststart=True), 0.9)
    # the cut falls in the 18th packet: 17 whole frames hold one clip of 9 (decord reads a copy without the
    # cut packet, which it could not open; the rule and its warning: test_early_end.py)
    warning, *clips = sample_clips(sample(video), config(num_frames=9, clips="all"))
    assert (warning.error_type, warning.level) == ("EndedEarly", "warning")
    assert "17 whole frames of the 30" in warning.message
    assert [c.info.frame_indices for c in clips] == [list(range(9))]
    assert read_index(clips[0].frames) == list(range(9))
