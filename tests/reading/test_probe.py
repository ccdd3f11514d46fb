"""One probe: what `probe_clips` says of a sample is what `decode_clips` gives, whatever the video's
rotation, pixel aspect and frame rate, the decoder and the clip policy; and a video's provenance
does not depend on the clip policy."""

from __future__ import annotations

from fractions import Fraction

import pytest

from pipeline.reading import ReadConfig, Sample, decode_clips, probe_clips, sample_clips
from pipeline.reading.probe import first_frame_geometry
from tests.support.videos import encode, index_frames, vfr_timestamps

BUCKETS = ((64, 128), (128, 64), (96, 96))


def videos() -> dict[str, tuple[bytes, str]]:
    return {
        # stored 128 wide, 64 high, shown turned a quarter: 64 wide, 128 high
        "rotated": (encode(index_frames(20, 64, 128), rotation=90), "mp4"),
        # stored 64x64, each pixel shown twice as wide: 128 wide, 64 high
        "anamorphic": (encode(index_frames(20, 64, 64), sample_aspect=Fraction(2)), "mp4"),
        "vfr": (encode(index_frames(59, 96, 96), container="matroska", timestamps=vfr_timestamps()), "mkv"),
    }


@pytest.fixture(scope="module")
def samples() -> dict[str, Sample]:
    return {name: Sample("s.tar", name, data, ext, None, None) for name, (data, ext) in videos().items()}


@pytest.mark.parametrize("decoder", ["pyav", "decord"])
@pytest.mark.parametrize("clips", ["first", "all", "whole", "uniform:2"])
@pytest.mark.parametrize("name", ["rotated", "anamorphic", "vfr"])
def test_the_probe_gives_the_clips_decoding_gives(samples, name, clips, decoder):
    config = ReadConfig(num_frames=9, resolution=None, buckets=BUCKETS, clips=clips, decoder=decoder, temporal_compression=4)
    probe = probe_clips(samples[name], config)
    decoded = [piece for piece in decode_clips(samples[name], config, piece_frames=4) if piece.start == 0]
    assert probe.clips == [piece.info for piece in decoded]
    assert all(piece.frames.shape[1:3] == (piece.info.height, piece.info.width) for piece in decoded)


def test_rotation_and_pixel_aspect_choose_the_bucket(samples):
    config = ReadConfig(num_frames=9, resolution=None, buckets=BUCKETS)
    sizes = {name: (probe_clips(sample, config).clips[0].height, probe_clips(sample, config).clips[0].width)
             for name, sample in samples.items()}
    assert sizes == {"rotated": (128, 64), "anamorphic": (64, 128), "vfr": (96, 96)}
    rotated = probe_clips(samples["rotated"], config).geometry
    assert (rotated.stored_height, rotated.stored_width, rotated.rotation, rotated.display_size) == (64, 128, 90, (128, 64))
    anamorphic = probe_clips(samples["anamorphic"], config).geometry
    assert (anamorphic.pixel_aspect, anamorphic.display_size) == (2.0, (64, 128))


def test_both_decoders_read_the_same_geometry(samples, tmp_path):
    for name, sample in samples.items():
        path = tmp_path / f"{name}.{sample.media_ext}"
        path.write_bytes(sample.media)
        codec, geometry = first_frame_geometry(str(path))
        pyav = probe_clips(sample, ReadConfig(num_frames=9, resolution=None, buckets=BUCKETS, clips="all"))
        assert (codec, geometry) == (pyav.codec, pyav.geometry)


def test_a_videos_provenance_is_the_same_whatever_the_clip_policy(samples):
    """A variable-frame-rate mkv of 59 frames (30 at 25 fps, 29 at 10 fps, the last shown 40 ms): counted,
    59 frames in 4.04 s; a first clip reads only its start, so its figures are the header's, marked so."""
    facts = {}
    for clips in ("first", "all", "whole", "uniform:2"):
        for decoder in ("pyav", "decord"):
            config = ReadConfig(num_frames=9, resolution=(32, 32), clips=clips, decoder=decoder)
            info = probe_clips(samples["vfr"], config).clips[0]
            facts[clips, decoder] = (info.source_num_frames, round(info.source_fps, 4), info.source_frames_estimated)
    counted = (59, round(59 / 4.04, 4), False)
    estimated = {key: value for key, value in facts.items() if value[2]}
    assert list(estimated) == [("first", "pyav")]  # decord indexes every frame
    assert all(value == counted for key, value in facts.items() if key not in estimated)
    assert estimated["first", "pyav"][:2] != counted[:2]  # the header's guess: why it is marked


def test_a_first_clip_that_reads_the_whole_video_counts_it(samples):
    config = ReadConfig(num_frames=9, resolution=None, buckets=BUCKETS, clips="first")
    info = probe_clips(samples["rotated"], config).clips[0]  # 20 frames: the clip and its margin read them all
    assert (info.source_num_frames, info.source_frames_estimated) == (20, False)
    assert info.source_fps == pytest.approx(25)


def test_a_video_too_short_is_described_with_the_record_the_run_writes(samples):
    config = ReadConfig(num_frames=33, resolution=None, buckets=BUCKETS, clips="all")
    probe = probe_clips(samples["rotated"], config)  # 20 frames
    assert probe.clips == [] and probe.timing.num_frames == 20 and probe.geometry.display_size == (128, 64)
    (record,) = [item for item in sample_clips(samples["rotated"], config)]
    assert probe.problem == record
