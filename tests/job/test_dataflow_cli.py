"""The job through its CLI with several clips per video, default decode settings: it ends.

Shards of the real demo video with three clips each used to hang (decode tasks holding the CPU
slots that earlier samples needed); the dataflow cannot.
"""

from __future__ import annotations

import pytest

from tests.support.jobs import REPO, run_cli
from tests.support.outputs import ids, read_rows, read_summary
from tests.support.shards import write_shards

VIDEO = REPO / "demo" / "bigbuckbunny.mp4"


@pytest.mark.slow
def test_three_clips_per_video_with_default_decode_settings_ends_with_every_clip(ray_head, tmp_path):
    data = write_shards(tmp_path / "shards", 4, shards=3, video=VIDEO.read_bytes())
    out = tmp_path / "out"
    run_cli(ray_head, "--input", data.spec, "--output", str(out), "--clips", "uniform:3", "--num-frames", "17",
            "--resolution", "64x64", "--progress-seconds", "2", timeout=120)
    assert sorted(ids(read_rows(out))) == sorted(
        (key, c) for keys in data.good.values() for key in keys for c in range(3))
    assert read_summary(out)["this_run"]["balance"]["hint"]  # the run says which side limited it
