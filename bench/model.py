"""WF-VAE encode throughput and peak memory: whole clip vs Causal Cache chunks.

    python bench/model.py                                  # CPU, WF-VAE-L-16Chn layout, 256x256
    python bench/model.py --device cuda --dtype bf16 --channels-last [--compile]
    python bench/model.py --device cuda --autocast         # fp32 weights, bf16 autocast
    python bench/model.py --device cuda --size 512 --frames 33 --modes full   # the paper's setting

With ``--dtype bf16`` or ``--autocast`` each point also reports the relative error of its latents
against the same model in fp32 (||bf16 - fp32|| / ||fp32||; target below 1e-2).

Each (mode, frames) point runs in a fresh child process so peak memory is its own:
on CUDA ``max_memory_allocated``; on CPU the high-water mark of resident memory (VmHWM,
reset just before the encode through /proc/self/clear_refs). CPU children run with a fixed
glibc mmap threshold: by default glibc raises it after large frees, and from then on keeps
freed activations resident, which shows up as a one-time step in RSS that is not live data. Memory is reported above the
baseline of model + input, i.e. what the encode itself needs. Random weights in the
release layout: speed and memory do not depend on the weights' values.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def _proc_mib(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure(args: argparse.Namespace) -> dict:
    """One (mode, frames) point; runs in the child process."""
    import torch

    from wfvae import WFVAE

    device = torch.device(args.device)
    dtype = getattr(torch, DTYPES[args.dtype])
    torch.manual_seed(0)
    vae = WFVAE.from_config(args.preset, device=device, dtype=dtype)
    if args.channels_last:
        vae = vae.to(memory_format=torch.channels_last_3d)
    if args.compile:
        vae.encoder = torch.compile(vae.encoder, dynamic=False)
    chunk = args.chunk_frames if args.mode == "chunked" else None
    video = (torch.rand(1, 3, args.frames, args.size, args.size, device=device) * 2 - 1).to(dtype)
    warm = video[:, :, : 1 + (chunk or vae.temporal_compression)]
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.autocast)

    def encode():
        with autocast:
            return vae.encode(video, chunk_frames=chunk)

    with autocast:
        vae.encode(warm, chunk_frames=chunk)  # kernels, allocator pools, compilation

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    if device.type == "cuda":
        sync()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        base = _proc_mib("VmRSS")
    times = []
    for _ in range(args.repeats):
        sync()
        start = time.perf_counter()
        posterior = encode()
        sync()
        times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak = _proc_mib("VmHWM") - base
    seconds = min(times)
    error = None
    if dtype != torch.float32 or args.autocast:
        del vae
        reference = WFVAE.from_config(args.preset, device=device, dtype=torch.float32)
        exact = reference.encode(video.float(), chunk_frames=chunk).mean
        error = ((posterior.mean.float() - exact).norm() / exact.norm()).item()
    return {
        "mode": args.mode, "frames": args.frames, "size": args.size, "chunk_frames": chunk,
        "seconds": seconds, "frames_per_s": args.frames / seconds, "peak_mib_above_baseline": peak,
        "latent_shape": list(posterior.mean.shape[1:]), "rel_error_vs_fp32": error,
    }


def run_point(args: argparse.Namespace, mode: str, frames: int) -> dict:
    cmd = [sys.executable, __file__, "--child", "--mode", mode, "--frames", str(frames)]
    for key in ("preset", "size", "chunk_frames", "device", "dtype", "repeats"):
        cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    cmd += ["--channels-last"] * args.channels_last + ["--compile"] * args.compile + ["--autocast"] * args.autocast
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"} if args.device == "cpu" else None
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        reason = "out of memory" if "out of memory" in result.stderr.lower() or result.returncode == -9 else \
            result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.returncode}"
        return {"mode": mode, "frames": frames, "size": args.size, "error": reason}
    return json.loads(result.stdout.strip().splitlines()[-1])


def machine(args: argparse.Namespace) -> dict:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "cpu": platform.processor() or
            platform.machine(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    if args.device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="WF-VAE-L-16Chn")
    parser.add_argument("--frames", type=int, nargs="+", default=[17, 33, 65, 129, 257])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--modes", nargs="+", default=["full", "chunked"], choices=["full", "chunked"])
    parser.add_argument("--chunk-frames", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=sorted(DTYPES))
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--autocast", action="store_true", help="fp32 weights, bf16 autocast")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, help="JSON results (default bench/results/model-<device>.json)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.frames = args.frames[0]
        print(json.dumps(measure(args)))
        return

    rows = []
    print(f"{args.preset} encode, {args.size}x{args.size}, {args.device} {args.dtype}, chunk {args.chunk_frames}")
    print(f"{'mode':8} {'frames':>6} {'seconds':>9} {'frames/s':>9} {'peak MiB':>9} {'rel err':>8}")
    for mode in args.modes:
        for frames in args.frames:
            row = run_point(args, mode, frames)
            rows.append(row)
            if "error" in row:
                print(f"{mode:8} {frames:6d}   {row['error']}")
            else:
                error = "" if row["rel_error_vs_fp32"] is None else f"{row['rel_error_vs_fp32']:8.1e}"
                print(f"{mode:8} {frames:6d} {row['seconds']:9.2f} {row['frames_per_s']:9.2f} "
                      f"{row['peak_mib_above_baseline']:9.0f} {error:>8}", flush=True)
    out = args.out or ROOT / "bench" / "results" / f"model-{args.device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine(args), "config": {k: v for k, v in vars(args).items()
                                                                    if k not in ("child", "mode", "out")},
                               "results": rows}, indent=2, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
