from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from wfvae import WFVAE

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "wfvae"


@pytest.fixture(scope="session")
def fixtures_dir(tmp_path_factory) -> Path:
    """The reference's tiny models: tiny-4x as released (safetensors), tiny-8x as a training checkpoint,
    built here around its tracked EMA weights (the repository keeps the weights, not the layout)."""
    folder = tmp_path_factory.mktemp("wfvae-fixtures")
    for name in ("layouts", "tiny-4x"):
        (folder / name).symlink_to(FIXTURES / name)
    eight = folder / "tiny-8x"
    eight.mkdir()
    for name in ("config.json", "golden.safetensors"):
        (eight / name).symlink_to(FIXTURES / "tiny-8x" / name)
    write_training_checkpoint(load_file(str(FIXTURES / "tiny-8x" / "ema.safetensors")), eight / "checkpoint.ckpt")
    return folder


def write_training_checkpoint(ema: dict[str, torch.Tensor], path: Path) -> None:
    """The reference trainer's layout: EMA weights behind DDP's ``module.`` prefix, and beside them plain
    weights that are wrong (random), so that loading the wrong set cannot pass a golden test."""
    generator = torch.Generator().manual_seed(0)
    plain = {k: torch.randn(v.shape, generator=generator) if v.is_floating_point() else v for k, v in ema.items()}
    torch.save({"ema_state_dict": {"module." + k: v for k, v in ema.items()}, "state_dict": {"gen_model": plain}},
               path)


@pytest.fixture(scope="session", params=["tiny-4x", "tiny-8x"])
def tiny_vae(request, fixtures_dir) -> WFVAE:
    """The reference's tiny test models: 4x (safetensors release layout) and 8x (training checkpoint)."""
    return WFVAE.from_pretrained(fixtures_dir / request.param)


def random_video(frames: int, height: int = 32, width: int = 48, batch: int = 1, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, frames, height, width, generator=generator) * 2 - 1
