"""Every bad setting is refused before any work starts, with a message that says what is allowed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipeline.job.config import ConfigError, JobConfig, config_from_args
from pipeline.job.driver import Plan

from .conftest import REPO, TINY_MODEL


@pytest.mark.parametrize("flags, message", [
    (["--num-frames", "0"], "--num-frames: must be a positive integer"),
    (["--fps", "-3"], "--fps: must be a positive number"),
    (["--clips", "some"], "--clips: must be one of first, uniform:N"),
    (["--clips", "uniform:0"], "--clips: must be one of"),
    (["--resolution", "250x256"], "--resolution: sizes are HxW with both sides positive multiples of 8"),
    (["--resolution", "big"], "is not a size; use HxW"),
    (["--buckets", "256x256,100x200"], "--buckets: sizes are HxW"),
    (["--batch-size", "0"], "--batch-size: must be a positive integer"),
    (["--latent-dtype", "int8"], "invalid choice"),
    (["--store", "everything"], "invalid choice"),
    (["--gpus-per-actor", "-1"], "--gpus-per-actor: must be a non-negative number"),
    (["--num-actors", "0"], "--num-actors: must be a positive integer"),
    (["--decode-workers", "0"], "--decode-workers: must be a positive integer"),
    (["--max-shard-attempts", "0"], "--max-shard-attempts: must be a positive integer"),
    (["--storage-options", "{not json"], "--storage-options: not valid JSON"),
    (["--storage-options", "[1]"], "--storage-options: must be a JSON object"),
    (["--caption-key", "json:"], "--caption-key: must be a file extension"),
])
def test_bad_flags(flags, message):
    with pytest.raises((ConfigError, SystemExit)) as info:
        config_from_args(flags)
    if info.type is ConfigError:
        assert message in str(info.value)


def test_bad_flags_exit_2_with_the_message_on_the_command_line():
    result = subprocess.run([sys.executable, str(REPO / "jobs" / "encode_dataset.py"), "--batch-size", "-2"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--batch-size: must be a positive integer, got -2" in result.stderr


def test_settings_checked_against_the_model_before_ray_starts(tmp_path):
    (tmp_path / "part-000000.tar").write_bytes(b"")
    base = {"input": str(tmp_path / "part-000000.tar"), "output": str(tmp_path / "out"), "model": str(TINY_MODEL)}
    with pytest.raises(ConfigError, match=r"--num-frames: must be 1 \+ a multiple of the model's temporal "
                                          r"compression \(4\), e.g. 17 or 21; got 18"):
        Plan(JobConfig(**base, num_frames=18), print)
    with pytest.raises(ConfigError, match=r"--chunk-frames: must be a multiple of the model's temporal compression"):
        Plan(JobConfig(**base, chunk_frames=6), print)
    with pytest.raises(ConfigError, match="--model: .*no such file or folder"):
        Plan(JobConfig(**{**base, "model": str(tmp_path / "missing")}), print)
    with pytest.raises(ConfigError, match="--input: no shards match"):
        Plan(JobConfig(**{**base, "input": str(tmp_path / "nothing-*.tar")}), print)


def test_yaml_config_with_flag_overrides(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("num-frames: 33\nfps: 8\nbuckets: [[256, 448], [448, 256]]\nstorage_options:\n  anon: true\n")
    config = config_from_args(["--config", str(path), "--fps", "12"])
    assert config.num_frames == 33 and config.fps == 12 and config.resolution is None
    assert config.buckets == ((256, 448), (448, 256)) and config.storage_options == {"anon": True}
    path.write_text("num_frames: 33\ncolour: blue\n")
    with pytest.raises(ConfigError, match=r"unknown settings \['colour'\]"):
        config_from_args(["--config", str(path)])


def test_output_settings_ignore_runtime_knobs():
    a = JobConfig(batch_size=1, num_actors=3, chunk_frames=8, decode_workers=2)
    b = JobConfig(batch_size=8)
    assert a.fingerprint() == b.fingerprint()
    assert JobConfig(num_frames=33).fingerprint() != b.fingerprint()
