"""Train a small latent diffusion model on a job's output folder: what the latents are for.

A starting point, not a trainer. The model is a few 3D convolutions and attention layers over the
(C, t, h, w) latents, conditioned on the caption embedding when the output has them (cross-attention,
with a learned "no caption" token always present, so a sample without a caption attends to that
alone), trained with the flow-matching loss: x_s = (1 - s) * noise + s * latent, predict the velocity
latent - noise. Images (t = 1) and videos come in batches of their own (LatentDataset's buckets).

Reading goes through LatentDataset and torchdata's StatefulDataLoader. Every ``--checkpoint-every``
steps the model, the optimizer, the noise generator and the loader's state go to ``--checkpoint``
(written aside, then renamed: a kill leaves the old one or the new one). Started again with the same
``--checkpoint``, training resumes at that step, in that epoch, at that sample: the rest of the epoch
is every remaining sample once; ``--log`` loses the lines of the steps done again.

    python examples/train_latent_diffusion.py OUT --checkpoint run/ckpt.pt --log run/log.jsonl \\
        [--epochs 4] [--batch-size 8] [--workers 2] [--checkpoint-every 50]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchdata.stateful_dataloader import StatefulDataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.dataset import LatentDataset  # noqa: E402


class TimeEmbedding(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.width = width
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        half = self.width // 2
        frequencies = torch.exp(-math.log(10_000) * torch.arange(half, dtype=torch.float32) / half)
        angles = 1000 * s[:, None] * frequencies[None]
        return self.mlp(torch.cat([angles.sin(), angles.cos()], dim=1))


class ResBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.GroupNorm(8, width), nn.GroupNorm(8, width)
        self.conv1 = nn.Conv3d(width, width, 3, padding=1)
        self.conv2 = nn.Conv3d(width, width, 3, padding=1)
        self.time = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.time(time)[:, :, None, None, None]
        return x + self.conv2(F.silu(self.norm2(h)))


class Attention(nn.Module):
    """Self-attention over the latent's positions, then cross-attention to the caption's tokens."""

    def __init__(self, width: int, heads: int, text_dim: int | None) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(width)
        self.self_attention = nn.MultiheadAttention(width, heads, batch_first=True)
        self.text = None if text_dim is None else nn.Linear(text_dim, width)
        if text_dim is not None:
            self.no_caption = nn.Parameter(torch.zeros(1, 1, width))
            self.cross_norm = nn.LayerNorm(width)
            self.cross_attention = nn.MultiheadAttention(width, heads, batch_first=True)

    def forward(self, x: torch.Tensor, text: torch.Tensor | None, mask: torch.Tensor | None) -> torch.Tensor:
        b, c, t, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (B, t*h*w, C)
        q = self.norm(tokens)
        tokens = tokens + self.self_attention(q, q, q, need_weights=False)[0]
        if self.text is not None:
            keys = torch.cat([self.no_caption.expand(b, 1, c), self.text(text)], dim=1)
            ignore = torch.cat([torch.zeros(b, 1, dtype=torch.bool), ~mask], dim=1)  # the null token: always seen
            q = self.cross_norm(tokens)
            tokens = tokens + self.cross_attention(q, keys, keys, key_padding_mask=ignore, need_weights=False)[0]
        return tokens.transpose(1, 2).reshape(b, c, t, h, w)


class LatentDiffusion(nn.Module):
    def __init__(self, channels: int, width: int = 32, heads: int = 2, text_dim: int | None = None) -> None:
        super().__init__()
        self.time = TimeEmbedding(width)
        self.conv_in = nn.Conv3d(channels, width, 3, padding=1)
        self.blocks = nn.ModuleList([ResBlock(width), ResBlock(width)])
        self.attention = Attention(width, heads, text_dim)
        self.out = nn.Sequential(nn.GroupNorm(8, width), nn.SiLU(), nn.Conv3d(width, channels, 3, padding=1))

    def forward(self, x: torch.Tensor, s: torch.Tensor, text: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        time = self.time(s)
        h = self.blocks[0](self.conv_in(x), time)
        h = self.attention(h, text, mask)
        return self.out(self.blocks[1](h, time))


def flow_matching_loss(model: LatentDiffusion, latents: torch.Tensor, text: torch.Tensor | None,
                       mask: torch.Tensor | None, generator: torch.Generator) -> torch.Tensor:
    noise = torch.randn(latents.shape, generator=generator)
    s = torch.rand(latents.shape[0], generator=generator)
    position = s.view(-1, 1, 1, 1, 1)
    noisy = (1 - position) * noise + position * latents
    return F.mse_loss(model(noisy, s, text, mask), latents - noise)


def save(path: Path, checkpoint: dict) -> None:
    aside = path.with_name(path.name + ".tmp")
    torch.save(checkpoint, aside)
    os.replace(aside, path)


def keep_lines(path: Path | None, count: int) -> None:
    """The log as it was at the checkpoint: the steps after it are done again."""
    if path is not None and path.exists():
        path.write_text("".join(path.read_text().splitlines(keepends=True)[:count]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", help="a job's output folder (local path or fsspec URL)")
    parser.add_argument("--checkpoint", type=Path, required=True, help="written every --checkpoint-every steps")
    parser.add_argument("--log", type=Path, help="a JSON line per step: epoch, step, loss, the samples")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--checkpoint-every", type=int, default=50)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the training process (CPU)")
    parser.add_argument("--step-delay", type=float, default=0.0, help="seconds to wait after each step (to watch)")
    args = parser.parse_args()

    for path in (args.checkpoint, args.log):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)  # the model's initial weights
    noise = torch.Generator().manual_seed(args.seed)  # the loss's own: the loader also draws from torch's
    torch.set_num_threads(args.threads)  # a tiny model on CPU: more threads only fight the loader's workers
    probe = LatentDataset(args.output)
    text_dim = probe.output.text.dim if probe.output.text is not None else None
    fields = ["key", "clip", *(["text_embedding"] if text_dim is not None else [])]
    dataset = LatentDataset(args.output, dtype="float32", normalize="measured", shuffle=True, seed=args.seed,
                            batch_size=args.batch_size, fields=fields)
    with warnings.catch_warnings():  # torchdata 0.11 calls a deprecated torch function when made
        warnings.simplefilter("ignore", UserWarning)
        loader = StatefulDataLoader(dataset, batch_size=None, num_workers=args.workers)
    model = LatentDiffusion(probe.output.file_metadata.get("latent_channels") or 16, text_dim=text_dim)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)

    epoch, step = 0, 0
    if args.checkpoint.exists():
        checkpoint = torch.load(args.checkpoint, weights_only=False)
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        loader.load_state_dict(checkpoint["loader"])
        noise.set_state(checkpoint["noise"])
        epoch, step = checkpoint["epoch"], checkpoint["step"]
        keep_lines(args.log, step)
        print(f"resumed from {args.checkpoint}: epoch {epoch}, step {step}", flush=True)
    log = args.log.open("a") if args.log is not None else None
    started, loss = time.perf_counter(), torch.tensor(math.nan)
    for epoch in range(epoch, args.epochs):
        dataset.set_epoch(epoch)
        for batch in loader:
            text, mask = batch.get("text_embedding"), batch.get("text_mask")
            loss = flow_matching_loss(model, batch["latent"], text, mask, noise)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if log is not None:
                samples = [[key, clip] for key, clip in zip(batch["key"], batch["clip"].tolist())]
                log.write(json.dumps({"epoch": epoch, "step": step, "loss": loss.item(), "samples": samples}) + "\n")
                log.flush()
            if step % args.checkpoint_every == 0:
                save(args.checkpoint, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                       "loader": loader.state_dict(), "noise": noise.get_state(), "epoch": epoch,
                                       "step": step})
            time.sleep(args.step_delay)
        print(f"epoch {epoch}: step {step}, loss {loss.item():.4f}, {time.perf_counter() - started:.1f} s", flush=True)
    save(args.checkpoint, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                           "loader": loader.state_dict(), "noise": noise.get_state(), "epoch": args.epochs,
                           "step": step})  # done: started again, it has nothing left to do


if __name__ == "__main__":
    main()
