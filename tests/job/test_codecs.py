"""Every codec the reader decodes goes through the job: an AV1 video gives a row like an H.264 one."""

from __future__ import annotations

import pytest

from tests.support.jobs import SMALL_CLIPS, run_cli
from tests.support.outputs import read_rows
from tests.support.shards import make_shard
from tests.support.videos import encode, encode_av1, index_frames


@pytest.mark.slow
def test_an_av1_video_is_encoded_like_any_other(ray_head, tmp_path):
    frames = index_frames(12)
    samples = [
        {"__key__": "av1", "mp4": encode_av1(frames), "txt": "av1"},
        {"__key__": "h264", "mp4": encode(frames), "txt": "h264"},
    ]
    (tmp_path / "part-000000.tar").write_bytes(make_shard(samples))
    out = tmp_path / "out"
    run_cli(ray_head, "--input", str(tmp_path / "part-000000.tar"), "--output", str(out), *SMALL_CLIPS, timeout=180)
    assert read_rows(out, "errors") == []
    rows = {r["key"]: r for r in read_rows(out)}
    assert sorted(rows) == ["av1", "h264"]
    assert rows["av1"]["frame_indices"] == rows["h264"]["frame_indices"] == [0, 1, 2, 3, 4]
