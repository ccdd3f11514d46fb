"""A video that ends before its header says (issue 27): one rule for every clip policy and both decoders.

The cut files have the shape the issue found: a header that claims 250 frames over data for 109 whole ones
(then half of the 110th). Frames carry their source index, so every clip is checked against the frame its
timestamp names.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.output.schema import ERRORS_SCHEMA
from pipeline.reading import ClipPiece, ErrorRecord, ReadConfig, Sample, decode_clips, probe_clips, sample_clips
from pipeline.reading.early_end import Claim
from pipeline.reading.pyav_video import PyAVVideo
from tests.support.videos import cut_inside_frame, encode, index_frames, read_index

CLAIMED, HELD, FPS = 250, 109, 25
NO_B_FRAMES = {"bf": "0"}  # the whole frames are then the first 109 shown


def videos(count: int, held: int | None) -> dict[str, tuple[bytes, str]]:
    """mp4 (its index first, as a download has it), Matroska and avi, cut inside frame `held` (None: whole)."""
    frames = index_frames(count)
    made = {
        "mp4": (encode(frames, faststart=True, options=NO_B_FRAMES), "mp4"),
        "mkv": (encode(frames, container="matroska", options=NO_B_FRAMES), "mkv"),
        "avi": (encode(frames, codec="mpeg4", container="avi"), "avi"),
    }
    if held is None:
        return made
    return {name: (cut_inside_frame(data, held, "." + ext), ext) for name, (data, ext) in made.items()}


@pytest.fixture(scope="module")
def cut() -> dict[str, tuple[bytes, str]]:
    return videos(CLAIMED, HELD)


def read(video: tuple[bytes, str], decoder: str, clips: str, **settings) -> list:
    data, ext = video
    config = ReadConfig(num_frames=17, clips=clips, resolution=(48, 64), decoder=decoder, temporal_compression=4,
                        **settings)
    return list(sample_clips(Sample("shard.tar", "key", data, ext, None, None), config))


def shown(clip) -> bool:
    """The clip's frames are the source frames its timestamps name."""
    return read_index(clip.frames) == [round(t * FPS) for t in clip.info.timestamps]


# Where each policy's clips start when 109 frames decode: uniform spreads 3 over them, all fits 6, whole
# takes the longest 1 + 4k.
STARTS = {"first": [0], "uniform:3": [0, 46, 92], "all": [0, 17, 34, 51, 68, 85], "whole": [0]}
LENGTHS = {"first": 17, "uniform:3": 17, "all": 17, "whole": 109}
CLAIMS = {"mp4": f"{HELD} whole frames of the {CLAIMED} its header claims",
          "avi": f"{HELD} whole frames of the {CLAIMED} its header claims",
          "mkv": f"{HELD} whole frames, ending at 4.36 s of the 10.00 s its header claims"}


@pytest.mark.parametrize("decoder", ["pyav", "decord"])
@pytest.mark.parametrize("clips", list(STARTS))
@pytest.mark.parametrize("kind", ["mp4", "mkv", "avi"])
def test_a_cut_video_gives_the_clips_it_holds_and_one_warning_first(cut, kind, clips, decoder):
    items = read(cut[kind], decoder, clips)
    if clips == "first" and decoder == "pyav" and kind != "mp4":
        # A first clip is read only as far as it needs; without a per-frame index the cut is not seen.
        assert all(not isinstance(item, ErrorRecord) for item in items)
        assert [item.info.source_ended_early for item in items] == [None] and shown(items[0])
        return
    warning, *found = items
    assert (warning.stage, warning.error_type, warning.level, warning.shard, warning.key) == (
        "decode", "EndedEarly", "warning", "shard.tar", "key")
    assert warning.message == f"the video ends early: {CLAIMS[kind]}; clips are taken from those"
    assert [clip.info.frame_indices[0] for clip in found] == STARTS[clips]
    assert {len(clip.frames) for clip in found} == {LENGTHS[clips]}
    assert all(shown(clip) for clip in found)
    assert {(clip.info.source_ended_early, clip.info.source_num_frames) for clip in found} == {(True, HELD)}
    assert found[-1].info.frame_indices[-1] < HELD


@pytest.mark.parametrize("decoder", ["pyav", "decord"])
@pytest.mark.parametrize("clips", ["uniform:3", "whole"])
def test_a_cut_mp4_with_b_frames_decodes_every_clip(clips, decoder):
    """x264's default: some frames shown before the last whole one are stored after the cut. Before, the third
    uniform clip failed (DecodeFailed on the cut packet) and `whole` ended short of it with no mark."""
    video = cut_inside_frame(encode(index_frames(CLAIMED), faststart=True), HELD)
    warning, *found = read((video, "mp4"), decoder, clips)
    assert warning.error_type == "EndedEarly" and f"{HELD} whole frames of the {CLAIMED}" in warning.message
    assert len(found) == {"uniform:3": 3, "whole": 1}[clips] and all(shown(clip) for clip in found)
    assert all(clip.info.source_ended_early for clip in found)


@pytest.mark.parametrize("decoder", ["pyav", "decord"])
@pytest.mark.parametrize("clips", list(STARTS))
def test_whole_videos_say_so(clips, decoder):
    for kind, video in videos(60, None).items():
        items = read(video, decoder, clips)
        assert all(not isinstance(item, ErrorRecord) for item in items), (kind, items)
        known = None if clips == "first" and decoder == "pyav" and kind == "mkv" else False  # no index to ask
        assert {item.info.source_ended_early for item in items} == {known}, kind


def test_a_video_cut_before_its_first_clip_warns_then_is_too_short(cut):
    video = (cut_inside_frame(encode(index_frames(CLAIMED), faststart=True, options=NO_B_FRAMES), 9), "mp4")
    for decoder in ("pyav", "decord"):
        warning, refused = read(video, decoder, "uniform:3")
        assert warning.level == "warning" and "9 whole frames of the 250" in warning.message
        assert (refused.error_type, refused.level) == ("VideoTooShort", "error")
        warning, shortened = read(video, decoder, "first", short_videos="shorten")
        assert warning.error_type == "EndedEarly" and len(shortened.frames) == 9 and shown(shortened)


def test_decode_clips_yields_the_warning_before_the_first_piece(cut):
    data, ext = cut["mp4"]
    config = ReadConfig(num_frames=17, clips="whole", resolution=(48, 64), temporal_compression=4)
    warning, *pieces = decode_clips(Sample("shard.tar", "key", data, ext, None, None), config, piece_frames=32)
    assert isinstance(warning, ErrorRecord) and warning.level == "warning" and warning.key == "key"
    assert all(isinstance(piece, ClipPiece) for piece in pieces)
    assert [(p.start, len(p.frames), p.is_last) for p in pieces] == [(0, 32, False), (32, 32, False),
                                                                     (64, 32, False), (96, 13, True)]


def test_the_probe_says_what_decoding_gives(cut):
    data, ext = cut["mp4"]
    sample = Sample("shard.tar", "key", data, ext, None, None)
    for decoder in ("pyav", "decord"):
        config = ReadConfig(num_frames=17, clips="uniform:3", resolution=(48, 64), decoder=decoder,
                            temporal_compression=4)
        probed = probe_clips(sample, config)
        decoded = [item.info for item in sample_clips(sample, config) if not isinstance(item, ErrorRecord)]
        assert probed.clips == decoded and probed.timing.num_frames == HELD
        assert {info.source_ended_early for info in probed.clips} == {True}


def test_the_reader_leaves_out_the_packet_cut_short(cut, tmp_path):
    path = tmp_path / "cut.mp4"
    path.write_bytes(cut["mp4"][0])
    video = PyAVVideo(str(path), ReadConfig(num_frames=17, temporal_compression=4))
    try:
        assert video.claim == Claim(frames=CLAIMED, seconds=None, frames_in_file=HELD)
        video.read_all()
        assert (video.packets_read, video.cut, video.complete) == (HELD, True, True)
    finally:
        video.close()


def test_an_error_record_is_an_error_or_a_warning():
    assert ErrorRecord("decode", "DecodeFailed", "m").level == "error"
    with pytest.raises(ValueError, match=r"level is one of \('error', 'warning'\), got 'fatal'"):
        ErrorRecord("decode", "DecodeFailed", "m", level="fatal")


def test_the_error_table_keeps_the_level(tmp_path):
    rows = [{"key": "k", "shard": "s", "stage": "decode", "error_type": "EndedEarly", "message": "m",
             "level": "warning"},
            {"key": "j", "shard": "s", "stage": "decode", "error_type": "DecodeFailed", "message": "m"}]
    pq.write_table(pa.Table.from_pylist(rows, schema=ERRORS_SCHEMA), tmp_path / "errors.parquet")
    # a row written without a level (as by writers older than the column) reads back as null: an error
    assert pq.read_table(tmp_path / "errors.parquet").column("level").to_pylist() == ["warning", None]
