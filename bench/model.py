"""WF-VAE encode throughput and peak memory: whole clip vs Causal Cache chunks.

    python bench/model.py                                  # CPU, WF-VAE-L-16Chn layout, 256x256
    python bench/model.py --device cuda --dtype bf16 --channels-last [--compile]
    python bench/model.py --device cuda --autocast         # fp32 weights, bf16 autocast
    python bench/model.py --device cuda --size 512 --frames 33 --modes full   # the paper's setting
    python bench/model.py --tiny [--stream] --out model.json   # seconds: what tests/bench/test_bench_smoke.py runs

With ``--dtype bf16`` or ``--autocast`` each point also reports the relative error of its latents
against the same model in fp32 (||bf16 - fp32|| / ||fp32||; target below 1e-2).

Streaming memory (``--stream``): resident memory while one long clip streams through
``WFVAE.stream_encoder``, against the frames pushed so far; each way of keeping the latents
runs in a fresh child process:

    python bench/model.py --stream --model demo/model --size 128 --frames 3000 --chunk-frames 32

``feed`` keeps them in the stream (``StreamEncoder.feed``, the whole posterior at ``close()``);
``list`` keeps every ``push`` result in a list, as a caller would without ``feed``; ``drop``
keeps nothing (the floor). A sampler thread reads RssAnon (anonymous resident memory) every
10 ms; each push's peak is taken, each 300-frame window reports the median of its pushes' peaks
(one push's transient activations vary with where glibc happens to place them), and growth is
the rise of a straight line fitted to the windows, from the first window to the last, over
its value at the first. The children run with glibc's default malloc settings, as a job's actors do.

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
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
# --tiny: the same points (or --stream) at the smallest sizes (flags given still win)
TINY = {"model": str(ROOT / "tests" / "fixtures" / "wfvae" / "tiny-4x"), "size": 32, "chunk_frames": 8}
TINY_FRAMES = {False: [9], True: [601]}  # the points; --stream: the shortest clip with two 300-frame windows


def _proc_mib(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure(args: argparse.Namespace) -> dict:
    """One (mode, frames) point; runs in the child process."""
    import torch

    device = torch.device(args.device)
    dtype = getattr(torch, DTYPES[args.dtype])
    torch.manual_seed(0)
    vae = _load(args, device, dtype)
    if args.channels_last:
        from bench.gpu_check import channels_last  # (Module.to refuses the model's 4-D per-frame weights)

        vae = channels_last(vae)
    if args.compile:
        vae.encoder = torch.compile(vae.encoder, dynamic=False)
    chunk = args.chunk_frames if args.mode == "chunked" else None
    video = (torch.rand(1, 3, args.frames, args.size, args.size, device=device) * 2 - 1).to(dtype)
    if args.channels_last:
        video = video.contiguous(memory_format=torch.channels_last_3d)
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
        torch.manual_seed(0)  # the measured model's weights (random ones are drawn again from the same seed)
        reference = _load(args, device, torch.float32)
        exact = reference.encode(video.float(), chunk_frames=chunk).mean
        error = ((posterior.mean.float() - exact).norm() / exact.norm()).item()
    return {
        "mode": args.mode, "frames": args.frames, "size": args.size, "chunk_frames": chunk,
        "seconds": seconds, "frames_per_s": args.frames / seconds, "peak_mib_above_baseline": peak,
        "latent_shape": list(posterior.mean.shape[1:]), "rel_error_vs_fp32": error,
    }


STREAM_KEEPS = ("feed", "list", "drop")
STREAM_WINDOW = 300  # frames per reported point


def _load(args: argparse.Namespace, device, dtype):
    from wfvae import WFVAE

    if args.model:
        return WFVAE.from_pretrained(args.model, device=device, dtype=dtype)
    return WFVAE.from_config(args.preset, device=device, dtype=dtype)


class _RssSampler:
    """Peak anonymous resident memory since the last ``take()``, sampled on a thread (the encoder
    releases the GIL inside its kernels, so the samples land during each push as well)."""

    def __init__(self, interval: float = 0.01) -> None:
        import threading

        self._peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self._peak = max(self._peak, _proc_mib("RssAnon"))

    def take(self) -> float:
        peak, self._peak = max(self._peak, _proc_mib("RssAnon")), 0.0
        return peak

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def measure_stream(args: argparse.Namespace) -> dict:
    """One long clip through ``stream_encoder``; runs in the child process."""
    import torch

    from wfvae import DiagonalGaussian

    torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), getattr(torch, DTYPES[args.dtype])
    vae = _load(args, device, dtype)
    tc, chunk = vae.temporal_compression, args.chunk_frames
    frames = 1 + (args.frames - 1) // tc * tc
    generator = torch.Generator().manual_seed(0)
    # a few distinct pieces reused round-robin: the input is not what is measured
    pieces = [(torch.rand(1, 3, chunk, args.size, args.size, generator=generator) * 2 - 1).to(dtype)
              for _ in range(3)]
    warm = vae.stream_encoder(chunk)
    warm.push(pieces[0][:, :, :1])
    warm.push(pieces[0])
    warm.close()
    sampler = _RssSampler()
    baseline = sampler.take()
    stream, kept, windows, push_peaks = vae.stream_encoder(chunk), [], [], []
    pushed, started = 0, time.perf_counter()
    sizes = [1] + [chunk] * ((frames - 1) // chunk) + ([(frames - 1) % chunk] if (frames - 1) % chunk else [])
    for index, size in enumerate(sizes):
        piece = pieces[index % len(pieces)][:, :, :size]
        if args.keep == "feed":
            stream.feed(piece)
        else:
            result = stream.push(piece)
            if args.keep == "list":
                kept.append(result)
        pushed += size
        push_peaks.append(sampler.take())
        if pushed // STREAM_WINDOW > len(windows):
            windows.append({"frames": pushed, "peak_rss_anon_mib": round(statistics.median(push_peaks), 1)})
            push_peaks = []
    rest = stream.close()
    posterior = rest if args.keep != "list" else DiagonalGaussian.cat(kept + [rest])
    seconds = time.perf_counter() - started
    closing = sampler.take()
    sampler.stop()
    fit = statistics.linear_regression([w["frames"] for w in windows], [w["peak_rss_anon_mib"] for w in windows])
    first, last = (fit.intercept + fit.slope * windows[i]["frames"] for i in (0, -1))
    return {"keep": args.keep, "frames": frames, "size": args.size, "chunk_frames": chunk,
            "seconds": seconds, "frames_per_s": frames / seconds, "baseline_rss_anon_mib": round(baseline, 1),
            "windows": windows, "closing_peak_rss_anon_mib": round(closing, 1), "growth": last / first - 1,
            "latent_frames": posterior.mean.shape[2]}


def run_stream(args: argparse.Namespace, keep: str) -> dict:
    cmd = [sys.executable, __file__, "--child", "--stream", "--keep", keep, "--frames", str(args.frames[0])]
    for key in ("preset", "model", "size", "chunk_frames", "device", "dtype", "threads"):
        if getattr(args, key) is not None:
            cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        return {"keep": keep, "error": result.stderr.strip().splitlines()[-1] if result.stderr.strip()
                else f"exit {result.returncode}"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def stream_main(args: argparse.Namespace) -> None:
    """Each way of keeping the latents, ``--repeats`` times, interleaved (the machine may be shared)."""
    rows = []
    print(f"{args.model or args.preset} stream_encoder, {args.size}x{args.size}, {args.device} {args.dtype}, "
          f"chunk {args.chunk_frames}, {args.threads} thread(s); peak RssAnon MiB per {STREAM_WINDOW} frames")
    for _ in range(args.repeats):
        for keep in args.keeps:
            row = run_stream(args, keep)
            rows.append(row)
            if "error" in row:
                print(f"{keep:5} {row['error']}")
                continue
            peaks = " ".join(f"{w['peak_rss_anon_mib']:5.0f}" for w in row["windows"])
            print(f"{keep:5} {row['seconds']:6.1f} s  {row['frames_per_s']:6.1f} f/s  growth {row['growth']:+6.1%}  "
                  f"[{peaks}]  close {row['closing_peak_rss_anon_mib']:.0f}", flush=True)
    write_results(args, rows, f"stream-memory-{args.device}.json")



def write_results(args: argparse.Namespace, rows: list[dict], name: str) -> None:
    """The rows with the machine and the settings, as JSON (``--out``, else bench/results/NAME)."""
    out = args.out or ROOT / "bench" / "results" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine(args), "config": {k: v for k, v in vars(args).items()
                                                                    if k not in ("child", "mode", "out")},
                               "results": rows}, indent=2, default=str))
    print(f"wrote {out}")

def run_point(args: argparse.Namespace, mode: str, frames: int) -> dict:
    cmd = [sys.executable, __file__, "--child", "--mode", mode, "--frames", str(frames)]
    for key in ("preset", "model", "size", "chunk_frames", "device", "dtype", "repeats"):
        if getattr(args, key) is None:
            continue
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
    parser.add_argument("--model", help="a saved model folder (instead of --preset's random weights)")
    parser.add_argument("--stream", action="store_true", help="streaming memory: RssAnon against frames pushed")
    parser.add_argument("--keeps", nargs="+", default=list(STREAM_KEEPS), choices=STREAM_KEEPS,
                        help="with --stream: how the latents are kept (see above)")
    parser.add_argument("--threads", type=int, default=1, help="with --stream: torch threads (an actor's CPU count)")
    parser.add_argument("--frames", type=int, nargs="+",
                        help="clip lengths (default 17 33 65 129 257; with --stream one length, default 3000)")
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
    parser.add_argument("--tiny", action="store_true", help="the smallest run, a few seconds (TINY in this script)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--keep", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tiny:
        parser.set_defaults(**TINY, frames=TINY_FRAMES[args.stream])
        args = parser.parse_args()
    args.frames = args.frames or ([3000] if args.stream else [17, 33, 65, 129, 257])
    if args.stream:
        if len(args.frames) != 1 or args.frames[0] <= 2 * STREAM_WINDOW:  # (cut to 1 + k x temporal compression)
            parser.error(f"--stream takes one --frames of at least {2 * STREAM_WINDOW + 1} (a point every {STREAM_WINDOW})")
        if args.child:
            args.frames = args.frames[0]
            print(json.dumps(measure_stream(args)))
        else:
            stream_main(args)
        return
    if args.child:
        args.frames = args.frames[0]
        print(json.dumps(measure(args)))
        return

    rows = []
    print(f"{args.model or args.preset} encode, {args.size}x{args.size}, {args.device} {args.dtype}, chunk {args.chunk_frames}")
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
    write_results(args, rows, f"model-{args.device}.json")


if __name__ == "__main__":
    main()
