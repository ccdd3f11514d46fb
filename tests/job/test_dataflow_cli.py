"""The job through its CLI with several clips per video, default decode settings: it ends.

Shards of the real demo video with three clips each used to hang (decode tasks holding the CPU
slots that earlier samples needed); the dataflow cannot.
"""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from .conftest import REPO, read_output, run_cli

VIDEO = REPO / "demo" / "bigbuckbunny.mp4"


def _bbb_shards(folder, shards: int, samples: int) -> str:
    folder.mkdir()
    data = VIDEO.read_bytes()
    for s in range(shards):
        with tarfile.open(folder / f"part-{s:06d}.tar", "w") as tar:
            for i in range(samples):
                for name, payload in ((f"s{s}-{i}.mp4", data), (f"s{s}-{i}.txt", f"bbb {s} {i}".encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
    return str(folder / f"part-{{000000..{shards - 1:06d}}}.tar")


@pytest.mark.slow
def test_three_clips_per_video_with_default_decode_settings_ends_with_every_clip(ray_head, tmp_path):
    spec = _bbb_shards(tmp_path / "shards", shards=3, samples=4)
    out = tmp_path / "out"
    result = run_cli(ray_head, "--input", spec, "--output", str(out), "--clips", "uniform:3", "--num-frames", "17",
                     "--resolution", "64x64", "--progress-seconds", "2", timeout=120)
    rows = read_output(out)
    assert sorted((r["key"], r["clip"]) for r in rows) == sorted(
        (f"s{s}-{i}", c) for s in range(3) for i in range(4) for c in range(3))
    summary = json.loads((out / "_summary.json").read_text())
    assert summary["this_run"]["balance"]["hint"] in result.stdout
