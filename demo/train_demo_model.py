"""Trains the bundled demo model: a tiny WF-VAE (released layout, 4x temporal, 4 channels).

The demo should show what latents are for, so its model must actually reconstruct video.
This fits the tiny architecture of the reference's test fixtures to random crops of the
demo clip on CPU in a few minutes: L1 reconstruction plus a small KL term, as WF-VAE is
trained (without the perceptual and adversarial losses of the real training recipe).

    python demo/train_demo_model.py --steps 3000     # writes demo/model/

Big Buck Bunny (c) copyright 2008, Blender Foundation, www.bigbuckbunny.org, CC-BY 3.0.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from demo.make_demo_shards import read_frames  # noqa: E402
from wfvae import WFVAE, CausalCache, DiagonalGaussian, WFVAEConfig  # noqa: E402

CONFIG = HERE.parent / "tests" / "fixtures" / "wfvae" / "tiny-4x" / "config.json"


def random_clips(frames: torch.Tensor, batch: int, length: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """(batch, 3, length, size, size) crops in [-1, 1] at random times, places and scales."""
    total, height, width = frames.shape[0], frames.shape[1], frames.shape[2]
    clips = []
    for _ in range(batch):
        scale = float(torch.empty(1).uniform_(1.0, 2.5, generator=generator))  # crop side = scale * size
        side = min(int(size * scale), height)
        t = int(torch.randint(0, total - length + 1, (1,), generator=generator))
        y = int(torch.randint(0, height - side + 1, (1,), generator=generator))
        x = int(torch.randint(0, width - side + 1, (1,), generator=generator))
        crop = frames[t:t + length, y:y + side, x:x + side].permute(0, 3, 1, 2).float()
        crop = F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        clips.append(crop.permute(1, 0, 2, 3))
    return torch.stack(clips) / 127.5 - 1


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = F.mse_loss((a.clamp(-1, 1) + 1) * 127.5, (b + 1) * 127.5).item()
    return 10 * math.log10(255**2 / mse)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--kl-weight", type=float, default=1e-6)
    parser.add_argument("--out", type=Path, default=HERE / "model")
    args = parser.parse_args()

    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    frames = torch.from_numpy(np.stack(read_frames(height=360)[0]))  # (T, 360, 640, 3) uint8
    holdout = random_clips(frames, 4, 17, 128, torch.Generator().manual_seed(123))
    config = WFVAEConfig.from_json(CONFIG)
    vae = WFVAE(config).train()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=args.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=args.steps, pct_start=0.05)
    started = time.perf_counter()
    for step in range(1, args.steps + 1):
        video = random_clips(frames, args.batch, args.frames, args.size, generator)
        posterior = DiagonalGaussian.from_moments(vae.encoder(video, CausalCache.whole_clip()))
        reconstruction = vae.decoder(posterior.sample(generator), CausalCache.whole_clip())
        kl = 0.5 * (posterior.mean.square() + posterior.logvar.exp() - 1 - posterior.logvar).sum() / video.shape[0]
        loss = F.l1_loss(reconstruction, video) + args.kl_weight * kl
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % 100 == 0 or step == args.steps:
            print(f"step {step:5d}  loss {loss.item():.4f}  kl {kl.item():9.1f}  "
                  f"{time.perf_counter() - started:6.0f} s", flush=True)
    vae.eval()
    held = psnr(vae.decode(vae.encode(holdout).mean), holdout)
    print(f"held-out PSNR (4 clips of 17x128x128): {held:.2f} dB")
    vae.save_pretrained(args.out, metadata={"trained_by": "demo/train_demo_model.py", "steps": str(args.steps),
                                            "heldout_psnr_db": f"{held:.2f}"})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
