"""The real thing: a reading process killed with SIGKILL after it checkpointed, and a fresh process resumed
from that checkpoint, together deliver what an uninterrupted run delivers: the same batches, in the same
order, with the same posterior noise, the rest of the epoch and the next one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.encoded_outputs import published_output
from tests.support.processes import gone

ROOT = Path(__file__).resolve().parents[2]


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.dataset.read_until_killed", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(process: subprocess.Popen) -> None:
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, output


def _wait_for(path: Path, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, f"no {path.name} after {seconds} s"
        time.sleep(0.05)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_killed_after_a_checkpoint_and_resumed_in_a_fresh_process(tmp_path):
    out = str(published_output(tmp_path / "out", shards=3, rows=8, store="moments", uncommitted=(), clips=2,
                               media_types=("video", "video", "image")).out)  # 3 x 14 = 42 rows
    _finish(_start(out, str(tmp_path / "whole.log")))
    whole = _lines(tmp_path / "whole.log")

    checkpoint = tmp_path / "checkpoint.pt"
    killed = _start(out, str(tmp_path / "killed.log"), "--checkpoint", str(checkpoint), "--save-at", "1", "5")
    _wait_for(Path(f"{checkpoint}.saved"), killed)
    saved = json.loads(Path(f"{checkpoint}.saved").read_text())
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 30  # its DataLoader workers see their parent gone and leave
    while not all(gone(pid) for pid in saved["workers"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in saved["workers"]:
        if not gone(pid):
            os.kill(pid, signal.SIGKILL)

    _finish(_start(out, str(tmp_path / "resumed.log"), "--resume", str(checkpoint)))
    before, after = _lines(tmp_path / "killed.log"), _lines(tmp_path / "resumed.log")
    assert saved["logged"] == sum(line["epoch"] == 0 for line in whole) + 5  # all of epoch 0, 5 batches of epoch 1
    assert len(before) >= saved["logged"]  # what came after the checkpoint is delivered again, as training redoes it
    assert before[:saved["logged"]] + after == whole
    for epoch in (0, 1, 2):
        rows = [tuple(row) for line in whole if line["epoch"] == epoch for row in line["ids"]]
        assert len(rows) == len(set(rows)) == 42
    assert any(line["epoch"] == 2 for line in after)
