from pathlib import Path

import pytest
import torch

from wfvae import WFVAE

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "wfvae"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session", params=["tiny-4x", "tiny-8x"])
def tiny_vae(request) -> WFVAE:
    """The reference's tiny test models: 4x (safetensors release layout) and 8x (training checkpoint)."""
    return WFVAE.from_pretrained(FIXTURES / request.param)


def random_video(frames: int, height: int = 32, width: int = 48, batch: int = 1, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, frames, height, width, generator=generator) * 2 - 1
