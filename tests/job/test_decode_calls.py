"""What a decode worker sends back for one call of several samples, run in this process (no Ray).

The encoder relies on it: every sample's parts in order, each sample closed by an ``end`` (with
its error if it failed, the next sample decoded all the same), the first sample's first pieces
skipped after a crash, and a parcel at every sample's end when asked, so a second crash names
its sample.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.job.decode_workers import PARCEL_BYTES, DecodeWorker
from pipeline.reading import ReadConfig, Sample, decode_clips, iter_samples
from tests.support.shards import make_shard
from tests.support.videos import encode, random_bytes, smooth_frames

CONFIG = ReadConfig(num_frames=5, temporal_compression=4, resolution=(32, 32), clips="uniform:3")


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> list[Sample]:
    """A good video, a broken one, another good one."""
    records = [{"__key__": "good-0", "mp4": encode(smooth_frames(30, 48, 64)), "txt": "a"},
               {"__key__": "broken", "mp4": random_bytes(3000), "txt": "b"},
               {"__key__": "good-1", "mp4": encode(np.roll(smooth_frames(30, 48, 64), 5, axis=2)), "txt": "c"}]
    path = tmp_path_factory.mktemp("calls") / "part-000000.tar"
    path.write_bytes(make_shard(records))
    return [item for item in iter_samples(str(path), CONFIG) if isinstance(item, Sample)]


def _by_sample(parcels) -> dict[int, list]:
    parts: dict[int, list] = {}
    for parcel in parcels:
        for part in parcel:
            parts.setdefault(part.index, []).append(part)
    return parts


def _clip_indices(parts) -> list[int]:
    return [piece.info.clip_index for part in parts for piece in part.pieces]


def test_a_call_sends_each_sample_in_order_and_a_failed_one_does_not_stop_the_next(samples):
    parcels = list(DecodeWorker().decode(samples, CONFIG, None, 0, PARCEL_BYTES, False))
    assert len(parcels) == 1  # small clips of three samples travel together
    parts = _by_sample(parcels)
    assert sorted(parts) == [0, 1, 2]
    assert [p.index for p in parcels[0]] == [0, 1, 2]
    for index in (0, 2):
        (part,) = parts[index]
        assert part.end and part.error is None and part.decode_seconds > 0
        expected = [piece.info.clip_index for piece in decode_clips(samples[index], CONFIG)]
        assert _clip_indices([part]) == expected == [0, 1, 2]
    (broken,) = parts[1]
    assert broken.end and broken.error is not None and not broken.pieces
    assert (broken.error.key, broken.error.stage) == ("broken", "decode")


def test_after_a_crash_the_first_sample_skips_what_the_encoder_has_and_each_sample_ends_a_parcel(samples):
    parcels = list(DecodeWorker().decode(samples, CONFIG, None, 2, PARCEL_BYTES, True))
    assert [[p.index for p in parcel] for parcel in parcels] == [[0], [1], [2]]
    parts = _by_sample(parcels)
    assert _clip_indices(parts[0]) == [2]  # its first two clips were delivered before the crash
    assert _clip_indices(parts[2]) == [0, 1, 2]  # the skip is the first sample's only


def test_a_parcel_never_holds_much_more_than_its_bytes_and_a_sample_spans_parcels(samples):
    piece_bytes = 5 * 32 * 32 * 3
    parcels = list(DecodeWorker().decode([samples[0], samples[2]], CONFIG, None, 0, 2 * piece_bytes, False))
    assert [sum(piece.frames.nbytes for part in parcel for piece in part.pieces) for parcel in parcels] == \
        [2 * piece_bytes, 2 * piece_bytes, 2 * piece_bytes]
    parts = _by_sample(parcels)
    assert [part.end for part in parts[0]] == [False, True]  # only a sample's last part ends it
    assert _clip_indices(parts[0]) == _clip_indices(parts[1]) == [0, 1, 2]
