"""examples/train_latent_diffusion.py: it trains (its loss falls) on real latents of the tiny model in seconds,
and killed with SIGKILL mid-epoch, then started again, it resumes from its checkpoint: every epoch sees each
sample once, and the steps are the uninterrupted run's, loss for loss."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from tests.support.encoded_outputs import published_output
from tests.support.outputs import ids, read_rows
from tests.support.processes import gone

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "train_latent_diffusion.py"


def _train(out, run: Path, *options: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(EXAMPLE), str(out), "--checkpoint", str(run / "checkpoint.pt"),
                             "--log", str(run / "log.jsonl"), "--batch-size", "4", *options],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(process: subprocess.Popen, seconds: float = 120) -> str:
    output, _ = process.communicate(timeout=seconds)
    assert process.returncode == 0, output
    return output


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_it_trains_and_its_loss_falls(moments, tmp_path):
    started = time.monotonic()
    _finish(_train(moments.out, tmp_path, "--epochs", "12", "--checkpoint-every", "1000"))
    assert time.monotonic() - started < 60
    log = _log(tmp_path)
    mean_loss = [statistics.mean(line["loss"] for line in log if line["epoch"] == epoch) for epoch in range(12)]
    assert statistics.mean(mean_loss[-3:]) < 0.8 * mean_loss[0], mean_loss
    rows = sorted(ids(read_rows(moments.out, shards=moments.committed)))
    for epoch in range(12):
        assert sorted(tuple(s) for line in log if line["epoch"] == epoch for s in line["samples"]) == rows


def test_killed_mid_epoch_it_resumes_from_its_checkpoint(tmp_path):
    out = published_output(tmp_path / "out", shards=2, rows=12, uncommitted=(), clips=2, text_dim=16,
                           media_types=("video", "video", "image"), uncaptioned=(2, 3)).out  # 2 x 20 rows, captions
    options = ("--epochs", "3", "--checkpoint-every", "3", "--workers", "2")
    whole = tmp_path / "whole"
    _finish(_train(out, whole, *options))

    run = tmp_path / "run"
    training = _train(out, run, *options, "--step-delay", "0.25")
    checkpoint = run / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while not (checkpoint.exists() and torch.load(checkpoint, weights_only=False)["epoch"] == 1):
        assert training.poll() is None and time.monotonic() < deadline, training.communicate()[0]
        time.sleep(0.05)
    workers = _children(training.pid)
    training.send_signal(signal.SIGKILL)
    training.communicate(timeout=60)
    assert training.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 30  # its loader's workers see their parent gone and leave
    while not all(gone(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in workers:
        if not gone(pid):
            os.kill(pid, signal.SIGKILL)
    saved = torch.load(checkpoint, weights_only=False)

    output = _finish(_train(out, run, *options))
    assert f"resumed from {checkpoint}: epoch 1, step {saved['step']}" in output
    log, expected = _log(run), _log(whole)
    assert [line["step"] for line in log] == list(range(1, len(expected) + 1))
    epoch_one = [line["step"] for line in expected if line["epoch"] == 1]
    assert epoch_one[0] <= saved["step"] < epoch_one[-1]  # killed mid-epoch, not at its ends
    rows = sorted(ids(read_rows(out)))
    for epoch in range(3):
        assert sorted(tuple(s) for line in log if line["epoch"] == epoch for s in line["samples"]) == rows
    assert [line["samples"] for line in log] == [line["samples"] for line in expected]
    assert [line["loss"] for line in log] == [line["loss"] for line in expected]  # model, optimizer and noise resumed
