"""Loading released layouts, and clear refusals of everything else."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from wfvae import WFVAE, CheckpointError

REPO = Path(__file__).resolve().parents[2]


def _release_copy(fixtures_dir: Path, dest: Path, mutate=None) -> Path:
    """A copy of tiny-4x (Hugging Face layout) whose state dict ``mutate`` may edit."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.json").write_text((fixtures_dir / "tiny-4x" / "config.json").read_text())
    state = load_file(str(fixtures_dir / "tiny-4x" / "diffusion_pytorch_model.safetensors"))
    if mutate:
        mutate(state)
    save_file(state, str(dest / "diffusion_pytorch_model.safetensors"))
    return dest


def test_wavelet_filters_may_be_missing(fixtures_dir, tmp_path):
    def drop(state):
        for key in [k for k in state if "wavelet" in k]:
            del state[key]

    folder = _release_copy(fixtures_dir, tmp_path / "release", drop)
    full = WFVAE.from_pretrained(fixtures_dir / "tiny-4x")
    stripped = WFVAE.from_pretrained(folder)
    video = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    assert torch.equal(full.encode(video).mean, stripped.encode(video).mean)
    assert full.weights_checksum() == stripped.weights_checksum()


def test_wrong_wavelet_filter_is_refused(fixtures_dir, tmp_path):
    def flip(state):
        state["decoder.inverse_wavelet_transform_out.g"] = -state["decoder.inverse_wavelet_transform_out.g"]

    folder = _release_copy(fixtures_dir, tmp_path / "release", flip)
    with pytest.raises(CheckpointError, match="inverse_wavelet_transform_out.g: holds .* not the fixed Haar filter"):
        WFVAE.from_pretrained(folder)


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.pop("decoder.conv_in.conv.bias"), r"1 missing keys: decoder.conv_in.conv.bias"),
    (lambda s: s.update({"decoder.extra.weight": torch.zeros(1)}), r"1 unexpected keys: decoder.extra.weight"),
    (lambda s: s.update({"encoder.conv_out.conv.bias": torch.zeros(5)}),
     r"1 wrong shapes: encoder.conv_out.conv.bias: file \(5,\), model \(8,\)"),
])
def test_mismatched_checkpoint_is_refused_with_details(fixtures_dir, tmp_path, edit, message):
    folder = _release_copy(fixtures_dir, tmp_path / "release", edit)
    with pytest.raises(CheckpointError, match=message) as info:
        WFVAE.from_pretrained(folder)
    assert "diffusion_pytorch_model.safetensors" in str(info.value)


def test_checkpoint_of_another_config_is_refused(fixtures_dir, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "config.json").write_text((fixtures_dir / "tiny-4x" / "config.json").read_text())
    (folder / "checkpoint.ckpt").write_bytes((fixtures_dir / "tiny-8x" / "checkpoint.ckpt").read_bytes())
    with pytest.raises(CheckpointError, match="does not match its config.json .* missing keys"):
        WFVAE.from_pretrained(folder)


def test_garbage_files_are_not_checkpoints(fixtures_dir, tmp_path):
    (tmp_path / "config.json").write_text((fixtures_dir / "tiny-4x" / "config.json").read_text())
    (tmp_path / "model.ckpt").write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match="model.ckpt: not a PyTorch checkpoint"):
        WFVAE.from_pretrained(tmp_path / "model.ckpt")
    (tmp_path / "diffusion_pytorch_model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        WFVAE.from_pretrained(tmp_path)
    torch.save({"epoch": torch.tensor(3), "optimizer": {"lr": torch.tensor(1.0)}}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="does not match|no weights found"):
        WFVAE.from_pretrained(tmp_path / "other.ckpt")


def test_missing_and_bad_config(fixtures_dir, tmp_path):
    weights = fixtures_dir / "tiny-4x" / "diffusion_pytorch_model.safetensors"
    (tmp_path / weights.name).write_bytes(weights.read_bytes())
    with pytest.raises(FileNotFoundError, match="no config.json"):
        WFVAE.from_pretrained(tmp_path)
    config = json.loads((fixtures_dir / "tiny-4x" / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "norm_type": "batchnorm"}))
    with pytest.raises(ValueError, match="norm_type must be one of"):
        WFVAE.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**config, "l1_dowmsample_block": "Spatial2xTime2x3DDownsample"}))
    with pytest.raises(ValueError, match="l1_downsample_wavelet"):
        WFVAE.from_pretrained(tmp_path)


def test_a_scalar_scale_and_shift_apply_to_every_channel(fixtures_dir, tmp_path):
    folder = _release_copy(fixtures_dir, tmp_path / "scalar")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "scale": 0.5, "shift": -1}))
    vae = WFVAE.from_pretrained(folder)
    assert vae.config.latent_scale_shift() == ([0.5] * 4, [-1.0] * 4)
    z = torch.randn(1, 4, 2, 4, 4)
    assert torch.equal(vae.normalize(z), (z + 1) * 0.5)
    (folder / "config.json").write_text(json.dumps({**config, "scale": "0.5"}))
    with pytest.raises(ValueError, match=r"scale must be a number or a list of numbers .*got '0.5'"):
        WFVAE.from_pretrained(folder)


def test_nonexistent_path_says_what_is_accepted(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or folder .* config.json"):
        WFVAE.from_pretrained(tmp_path / "nowhere")


def test_dtype_and_checkpoint_in_bfloat16(fixtures_dir, tmp_path):
    folder = _release_copy(fixtures_dir, tmp_path / "bf16",
                           lambda s: s.update({k: v.to(torch.bfloat16) for k, v in s.items()}))
    vae = WFVAE.from_pretrained(folder, dtype=torch.bfloat16)
    assert vae.dtype == torch.bfloat16
    reference = WFVAE.from_pretrained(fixtures_dir / "tiny-4x")
    video = torch.rand(1, 3, 9, 32, 32) * 2 - 1
    low, high = vae.encode(video).mean.float(), reference.encode(video).mean
    assert (low - high).norm() / high.norm() < 5e-2


def _run_offline(code: str, env_extra: dict) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), **env_extra}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_hub_repo_id_offline_gives_clear_error(tmp_path):
    result = _run_offline("from wfvae import WFVAE; WFVAE.from_pretrained('chestnutlzj/WF-VAE-L-16Chn')",
                          {"HF_HUB_CACHE": str(tmp_path / "empty-cache")})
    assert result.returncode != 0
    assert "could not be fetched from the Hugging Face Hub" in result.stderr
    assert "If this machine is offline" in result.stderr


def test_hub_repo_id_loads_from_local_snapshot(fixtures_dir, tmp_path):
    """A Hub cache filled elsewhere (the layout snapshot_download writes) works offline."""
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--chestnutlzj--WF-VAE-L-16Chn"
    _release_copy(fixtures_dir, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    result = _run_offline("from wfvae import WFVAE; v = WFVAE.from_pretrained('chestnutlzj/WF-VAE-L-16Chn'); "
                          "print(v.temporal_compression, v.latent_channels)",
                          {"HF_HUB_CACHE": str(tmp_path / "hub")})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["4", "4"]


def test_hub_config_alone_needs_no_weights(fixtures_dir, tmp_path):
    """The driver checks settings against config.json: a Hub cache holding only that file suffices."""
    revision = "0123456789abcdef0123456789abcdef01234567"
    snapshot = tmp_path / "hub" / "models--chestnutlzj--WF-VAE-L-16Chn" / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text((fixtures_dir / "tiny-8x" / "config.json").read_text())
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text(revision)
    result = _run_offline("from wfvae.loading import read_config; "
                          "print(read_config('chestnutlzj/WF-VAE-L-16Chn').temporal_compression)",
                          {"HF_HUB_CACHE": str(tmp_path / "hub")})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["8"]
