"""How far reduced-precision latents are from fp32 ones, with trained weights on a real video.

    python bench/precision.py                                      # demo model, CPU
    python bench/precision.py --model chestnutlzj/WF-VAE-L-16Chn --device cuda --frames 33 --size 256
    python bench/precision.py --tiny --out precision.json   # seconds: what tests/bench/test_bench_smoke.py runs

``bench/model.py --dtype bf16`` measures the same on random weights and random pixels, a worst
case; this is what a job's latents see. For each precision it prints the relative error of the
latent mean, ||x - fp32|| / ||fp32|| (target below 1e-2), and the largest per-channel one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import av
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# --tiny: the same comparisons at the smallest sizes (flags given still win)
TINY = {"model": str(ROOT / "tests" / "fixtures" / "wfvae" / "tiny-4x"), "frames": 9, "size": 32}

from bench.machine import describe_machine  # noqa: E402
from wfvae import WFVAE  # noqa: E402


def read_clip(path: Path, frames: int, size: int) -> torch.Tensor:
    """The first ``frames`` frames, shorter side scaled to ``size`` and center-cropped: (1,3,T,H,W) in [-1, 1]."""
    out = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        scale = size / min(stream.height, stream.width)
        width, height = round(stream.width * scale), round(stream.height * scale)
        for frame in container.decode(stream):
            if len(out) == frames:
                break
            rgb = frame.to_ndarray(format="rgb24", width=width, height=height)
            top, left = (height - size) // 2, (width - size) // 2
            out.append(rgb[top:top + size, left:left + size])
    if len(out) < frames:
        raise SystemExit(f"{path} has {len(out)} frames, fewer than --frames {frames}")
    return torch.from_numpy(np.stack(out)).permute(3, 0, 1, 2)[None].float() / 127.5 - 1


def relative_errors(latents: torch.Tensor, exact: torch.Tensor) -> tuple[float, float]:
    """(whole-tensor, worst per-channel) relative error."""
    diff = latents.float() - exact
    per_channel = diff.transpose(0, 1).flatten(1).norm(dim=1) / exact.transpose(0, 1).flatten(1).norm(dim=1)
    return (diff.norm() / exact.norm()).item(), per_channel.max().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "demo" / "model"))
    parser.add_argument("--video", type=Path, default=ROOT / "demo" / "bigbuckbunny.mp4")
    parser.add_argument("--frames", type=int, default=33)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--tiny", action="store_true", help="the smallest run, a few seconds (TINY in this script)")
    args = parser.parse_args()
    if args.tiny:
        parser.set_defaults(**TINY)
        args = parser.parse_args()

    video = read_clip(args.video, args.frames, args.size).to(args.device)
    exact = WFVAE.from_pretrained(args.model, device=args.device).encode(video).mean
    print(f"{args.model} on {args.video.name}, {args.frames}x{args.size}x{args.size}, {args.device}; "
          f"latents {tuple(exact.shape[1:])}")
    print(f"{'precision':<26} {'rel error':>10} {'worst channel':>14}")
    rows = []
    for label, dtype, autocast in [("bf16 weights", torch.bfloat16, False), ("fp16 weights", torch.float16, False),
                                   ("fp32 weights, bf16 autocast", torch.float32, True)]:
        vae = WFVAE.from_pretrained(args.model, device=args.device, dtype=dtype)
        with torch.autocast(torch.device(args.device).type, dtype=torch.bfloat16, enabled=autocast):
            latents = vae.encode(video.to(dtype)).mean
        whole, worst = relative_errors(latents, exact)
        print(f"{label:<26} {whole:>10.1e} {worst:>14.1e}", flush=True)
        rows.append({"precision": label, "rel_error": whole, "worst_channel_rel_error": worst})
    if args.out:
        args.out.write_text(json.dumps({"machine": describe_machine(), "config": vars(args),
                                        "latent_shape": list(exact.shape[1:]), "results": rows}, indent=2, default=str))


if __name__ == "__main__":
    main()
