"""save_pretrained writes the released layout, and from_pretrained reads it back exactly."""

import json

import pytest
import torch
from safetensors import safe_open

from tests.model.conftest import random_video
from wfvae import WFVAE, WFVAEConfig


@pytest.mark.parametrize("name", ["tiny-4x", "tiny-8x"])  # a release folder, and a training checkpoint
def test_round_trip_is_exact(fixtures_dir, tmp_path, name):
    original = WFVAE.from_pretrained(fixtures_dir / name)
    folder = original.save_pretrained(tmp_path / "saved")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "diffusion_pytorch_model.safetensors"]
    loaded = WFVAE.from_pretrained(folder)
    assert loaded.config == original.config
    assert loaded.config.to_dict() == original.config.to_dict()
    saved, expected = loaded.state_dict(), original.state_dict()
    assert saved.keys() == expected.keys()
    assert all(torch.equal(saved[k], expected[k]) and saved[k].dtype == expected[k].dtype for k in expected)
    assert loaded.weights_checksum() == original.weights_checksum()
    video = random_video(1 + 2 * original.temporal_compression, 16, 16)
    assert torch.equal(loaded.encode(video).mean, original.encode(video).mean)


def test_same_keys_and_config_vocabulary_as_the_release(fixtures_dir, tmp_path):
    folder = WFVAE.from_pretrained(fixtures_dir / "tiny-4x").save_pretrained(tmp_path / "saved")
    release = fixtures_dir / "tiny-4x"
    with safe_open(str(release / "diffusion_pytorch_model.safetensors"), "pt") as a, \
            safe_open(str(folder / "diffusion_pytorch_model.safetensors"), "pt") as b:
        assert sorted(a.keys()) == sorted(b.keys())  # the Haar filters included, as released
        assert b.metadata() == {"format": "pt"}
    assert json.loads((folder / "config.json").read_text()) == json.loads((release / "config.json").read_text())


def test_a_trained_model_in_another_precision(tmp_path):
    config = WFVAEConfig.from_dict({**WFVAEConfig().to_dict(), "base_channels": 32, "latent_dim": 4,
                                    "encoder_energy_flow_hidden_size": 32, "decoder_energy_flow_hidden_size": 32,
                                    "scale": [0.5, 1.0, 1.5, 2.0], "shift": [0.1, 0.2, 0.3, 0.4]})
    model = WFVAE.from_config(config, seed=3)
    folder = model.save_pretrained(tmp_path / "bf16", dtype=torch.bfloat16, metadata={"steps": "12"})
    with safe_open(str(folder / "diffusion_pytorch_model.safetensors"), "pt") as file:
        assert file.metadata() == {"format": "pt", "steps": "12"}
    loaded = WFVAE.from_pretrained(folder, dtype=torch.bfloat16)
    assert loaded.config.latent_scale_shift() == ([0.5, 1.0, 1.5, 2.0], [0.1, 0.2, 0.3, 0.4])
    assert loaded.weights_checksum() == model.to(torch.bfloat16).weights_checksum()


def test_overwrites_in_place_and_refuses_bad_metadata(fixtures_dir, tmp_path):
    folder = WFVAE.from_pretrained(fixtures_dir / "tiny-8x").save_pretrained(tmp_path / "m")
    WFVAE.from_pretrained(fixtures_dir / "tiny-4x").save_pretrained(folder)
    assert WFVAE.from_pretrained(folder).temporal_compression == 4
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "diffusion_pytorch_model.safetensors"]
    with pytest.raises(ValueError, match="metadata must map strings to strings"):
        WFVAE.from_pretrained(folder).save_pretrained(tmp_path / "x", metadata={"steps": 3})
