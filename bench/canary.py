"""Cost of the quality canary (--check-every N) against encoding, in one run.

    python bench/canary.py                                      # CPU, demo model, 17x256x256, batch 4
    python bench/canary.py --device cuda --model chestnutlzj/WF-VAE-L-16Chn --num-frames 33
    python bench/canary.py --preset WF-VAE-L-16Chn --num-frames 9 --resolution 128   # its cost on CPU
    python bench/canary.py --tiny --out canary.json   # seconds: what tests/bench/test_bench_smoke.py runs

Interleaved rounds of (encode one batch; check one of its clips; check the whole batch decoded
together, as the job does once --batch-size checks of one shape are pending) on the encoder's
device. The canary's share of the encoder's time at N is check_seconds / (N x
encode_seconds_per_clip), both per clip. Throughput lost is at most that share (less where
decoding, not encoding, bounds the job). Each shard's first clip is always checked, so a shard
of S clips costs max(1/N, 1/S) checks per clip.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# --tiny: the same rounds at the smallest sizes (flags given still win)
TINY = {"model": str(ROOT / "tests" / "fixtures" / "wfvae" / "tiny-4x"), "num_frames": 9, "resolution": 32,
        "batch_size": 2, "rounds": 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "demo" / "model"))
    parser.add_argument("--preset", help="a wfvae.PRESETS architecture with random weights instead of --model "
                                         "(timing only: its PSNR means nothing)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--num-frames", type=int, default=17)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (the job's CPU actor gets 1)")
    parser.add_argument("--out", type=Path, help="JSON results (default bench/results/canary-<device>.json)")
    parser.add_argument("--tiny", action="store_true", help="the smallest run, a few seconds (TINY in this script)")
    args = parser.parse_args()
    if args.tiny:
        parser.set_defaults(**TINY)
        args = parser.parse_args()

    import numpy as np
    import torch

    from demo.make_demo_shards import read_frames
    from pipeline.encode.batching import to_video
    from pipeline.encode.canary import QualityCanary
    from pipeline.dtypes import COMPUTE_DTYPES
    from pipeline.dtypes import resolve_dtype
    from wfvae import WFVAE

    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    dtype = COMPUTE_DTYPES[resolve_dtype("auto", device.type == "cuda")]
    vae = WFVAE.from_config(args.preset, device=device, dtype=dtype) if args.preset else \
        WFVAE.from_pretrained(args.model, device=device, dtype=dtype)
    canary = QualityCanary(vae, every=1, latent_dtype=torch.bfloat16)
    frames, _ = read_frames(height=args.resolution)
    size, width = args.resolution, frames[0].shape[1]
    clips = [np.ascontiguousarray(np.stack(frames[i * args.num_frames:(i + 1) * args.num_frames])
                                  [:, :, (width - size) // 2:(width - size) // 2 + size])
             for i in range(args.batch_size)]

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    encode_times, single_times, batch_times, psnrs = [], [], [], []
    for round_ in range(args.rounds + 1):  # round 0 warms up
        began = time.perf_counter()
        mean = vae.encode(to_video(clips, vae.device, vae.dtype)).mean
        sync()
        encoded = time.perf_counter()
        single = canary.psnr(clips[0], mean[0])
        sync()
        checked_one = time.perf_counter()
        batch = canary.psnrs(clips, mean)
        sync()
        checked_batch = time.perf_counter()
        if round_:
            encode_times.append((encoded - began) / args.batch_size)
            single_times.append(checked_one - encoded)
            batch_times.append((checked_batch - checked_one) / args.batch_size)
            psnrs.extend(batch)
            assert abs(single - batch[0]) < 0.05, (single, batch[0])
    per_clip = statistics.median(encode_times)
    checks = {"one_at_a_time": statistics.median(single_times), "batched": statistics.median(batch_times)}
    result = {"machine": {"python": platform.python_version(), "torch": torch.__version__,
                          "cpus": os.cpu_count(), "device": args.device,
                          "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None},
              "config": {k: str(v) for k, v in vars(args).items() if k != "out"},
              "encode_seconds_per_clip": round(per_clip, 4),
              "check_seconds_per_clip": {k: round(v, 4) for k, v in checks.items()},
              "check_over_encode": {k: round(v / per_clip, 3) for k, v in checks.items()},
              "encoder_time_share_at_100": {k: round(v / per_clip / 100, 4) for k, v in checks.items()},
              "psnr_db": round(statistics.median(psnrs), 2)}
    print(f"encode {per_clip:.3f} s per clip (batch {args.batch_size}); PSNR {result['psnr_db']} dB")
    for mode, seconds in checks.items():
        print(f"check  {seconds:.3f} s per clip {mode:>13} = {seconds / per_clip:.2f} encodes: "
              f"{100 * seconds / per_clip / 100:.2f}% of the encoder's time at N=100")
    out = args.out or ROOT / "bench" / "results" / f"canary-{args.preset or 'model'}-{args.device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
