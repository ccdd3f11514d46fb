"""A decoder process that dies costs the sample it was decoding, not the shard or the job."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from tests.support.shards import make_shard
from tests.support.videos import encode, ffmpeg_testsrc, index_frames

from .conftest import SMALL_CLIPS, read_output, start_cli


def _decode_worker_pids() -> list[int]:
    listing = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [int(line.split(None, 1)[0]) for line in listing.splitlines() if "ray::_decode" in line]


def _pids_decoding(size: int) -> list[int]:
    """Decode workers holding open a temporary video file of ``size`` bytes.

    Several samples' decode tasks run ahead of the encoder at once, so the test must pick
    the one decoding the long video rather than every decode worker.
    """
    found = []
    for pid in _decode_worker_pids():
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if "wfvae-video-" in target and os.path.getsize(target) == size:
                    found.append(pid)
                    break
        except OSError:  # the process or the file went away meanwhile
            continue
    return found


def test_killed_decode_worker_costs_one_sample(ray_head, tmp_path):
    long_video = ffmpeg_testsrc(40, size="320x240", fps=25)  # 1000 frames: its decode task runs for a while
    samples = [{"__key__": "long", "mp4": long_video, "txt": "long"}]
    samples += [{"__key__": f"short-{i}", "mp4": encode(index_frames(10)), "txt": "short"} for i in range(4)]
    (tmp_path / "part-000000.tar").write_bytes(make_shard(samples))
    out = tmp_path / "out"
    job = start_cli(ray_head, "--input", str(tmp_path / "part-000000.tar"), "--output", str(out), *SMALL_CLIPS,
                    "--clips", "all", "--decode-workers", "1", log=tmp_path / "job.log")
    try:
        deadline = time.monotonic() + 120
        while not (pids := _pids_decoding(len(long_video))) and time.monotonic() < deadline and job.poll() is None:
            time.sleep(0.02)
        assert pids, "no decode task seen for the long video"
        time.sleep(0.3)  # let it produce a few clips first
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        assert job.wait(timeout=240) == 0, (tmp_path / "job.log").read_text()
    finally:
        job.kill()
    errors = read_output(out, "errors")
    assert [(e["key"], e["stage"], e["error_type"]) for e in errors] == [("long", "decode", "DecoderCrashed")]
    rows = read_output(out)
    assert {r["key"] for r in rows if r["key"] != "long"} == {f"short-{i}" for i in range(4)}
    assert len([r for r in rows if r["key"] == "long"]) < 200  # the long video did not finish
