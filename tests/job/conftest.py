"""Shards of real (tiny) videos and a runner for the real job CLI against the session's Ray head."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.support.shards import make_shard
from tests.support.videos import encode, index_frames, random_bytes, truncated

REPO = Path(__file__).resolve().parents[2]
TINY_MODEL = REPO / "tests" / "fixtures" / "wfvae" / "tiny-4x"
SMALL_CLIPS = ["--model", str(TINY_MODEL), "--num-frames", "5", "--resolution", "32x32", "--batch-size", "2",
               "--progress-seconds", "1"]


@dataclass
class Dataset:
    folder: Path
    good: dict[str, list[str]]  # shard name -> keys that must give a clip
    broken: dict[str, list[str]]  # shard name -> keys that must give an error row

    @property
    def spec(self) -> str:
        return str(self.folder / ("part-{000000..%06d}.tar" % (len(self.good) - 1)))


def write_dataset(folder: Path, shards: int, samples: int, broken_every: int = 0, frames: int = 12) -> Dataset:
    """``shards`` tar files of ``samples`` videos each; every ``broken_every``-th sample is damaged."""
    folder.mkdir(parents=True, exist_ok=True)
    good: dict[str, list[str]] = {}
    broken: dict[str, list[str]] = {}
    for s in range(shards):
        name = f"part-{s:06d}"
        records = []
        good[name], broken[name] = [], []
        for i in range(samples):
            key = f"s{s}-v{i:03d}"
            video = encode(np.roll(index_frames(frames, 48, 64), i, axis=2))
            if broken_every and i % broken_every == broken_every - 1:
                video = truncated(video, 0.3) if i % 2 else random_bytes(2000, seed=i)
                broken[name].append(key)
            else:
                good[name].append(key)
            records.append({"__key__": key, "mp4": video, "txt": f"caption {key}", "json": {"i": i, "s": s}})
        (folder / f"{name}.tar").write_bytes(make_shard(records))
    return Dataset(folder, good, broken)


def run_cli(ray_head, *args: str, timeout: float = 240, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, str(REPO / "jobs" / "encode_dataset.py"), *args],
                            env=ray_head.env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if check and result.returncode != 0:
        raise AssertionError(f"job exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


def start_cli(ray_head, *args: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "jobs" / "encode_dataset.py"), *args], env=ray_head.env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, cwd=REPO)


def read_output(folder: Path, kind: str = "latents") -> list[dict]:
    rows = []
    for path in sorted((folder / kind).glob("*.parquet")):
        rows.extend(pq.read_table(path).to_pylist())
    return rows


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Dataset:
    """3 shards x 5 samples; every 4th sample broken (truncated or random bytes)."""
    return write_dataset(tmp_path_factory.mktemp("shards"), shards=3, samples=5, broken_every=4)
