"""The job's steady throughput against what its two sides can do alone, measured in one run.

    python bench/pipeline.py --standin          # GPU-speed stand-in on CPU: tiny model, 64x64, small videos
    python bench/pipeline.py --tiny --out p.json  # seconds: what tests/bench/test_bench_smoke.py runs
    python bench/pipeline.py                    # CPU, demo model, 360p sources, 256x256
    python bench/pipeline.py --device cuda --model chestnutlzj/WF-VAE-L-16Chn --source-height 720 \\
        --num-frames 33 --resolution 256 --batch-size 8 --decode-workers 12

1. Builds WebDataset shards of Big Buck Bunny segments re-encoded at ``--source-height``.
2. Decode capacity: one decode worker's clips/s, in this process on one core (the job's own
   ``decode_clips``, one decoder thread), over every sample of the shards.
3. Encode capacity: the model alone on the pre-decoded clips, batched as the job batches them,
   with the job encoder's precision and thread count.
4. The job: the real job (local Ray, one encoder actor, ``--decode-workers`` decode workers);
   its steady clips/s comes from the shards' commit times, the first shard (actor and worker
   start-up) excluded.
Capacities are measured before and after the job and averaged (the machine may be shared). Decode
capacity is measured once more beside the encoder running flat out in another process: where cores slow
each other down when both compute, the job's worker lies between the two figures (on the 2-vCPU dev
machine they differed by 0-3%, see docs/benchmarks.md). The
target: steady >= 0.8 x min(decode capacity x workers, encode capacity) when the job has a core
for each side; the summary's balance line says which side limited it.

``--pin`` gives the decode worker the last core to itself and puts everything else (this process, Ray,
the encoder) on the others, as on a GPU node whose decode workers have cores of their own; decode
capacity is then measured on that core.

``--standin`` makes the CPU encoder about as fast, relative to one decode core, as a GPU encoder
is relative to a GPU node's decode cores: the tiny test model (tests/fixtures/wfvae/tiny-4x),
17x64x64 clips, 12 small real videos per shard.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import describe_machine  # noqa: E402

# --tiny: every step once at the smallest sizes (flags given still win): what tests/bench/test_bench_smoke.py runs
TINY = {"model": str(ROOT / "tests" / "fixtures" / "wfvae" / "tiny-4x"), "shards": 2, "samples": 2, "num_frames": 5,
        "resolution": 32, "source_height": 96, "batch_size": 2}
STANDIN = {"model": str(ROOT / "tests" / "fixtures" / "wfvae" / "tiny-4x"), "resolution": 64, "source_height": 144,
           "samples": 12, "shards": 30}


def build_shards(folder: Path, shards: int, samples: int, frames: int, height: int) -> str:
    """Shards of distinct source segments (cycling through the clip), ``frames`` frames each."""
    import tarfile

    from demo.make_demo_shards import add, encode_mp4, read_frames

    source, fps = read_frames(height=height)
    folder.mkdir(parents=True, exist_ok=True)
    start = 0
    for shard in range(shards):
        with tarfile.open(folder / f"bench-{shard:06d}.tar", "w") as tar:
            for sample in range(samples):
                if start + frames > len(source):
                    start = 0
                segment = source[start:start + frames]
                start += frames // 2 + 1  # overlapping windows: distinct videos from one short clip
                key = f"s{shard:03d}-{sample:03d}"
                add(tar, f"{key}.mp4", encode_mp4(segment, fps))
                add(tar, f"{key}.txt", f"bench clip {key}".encode())
    return str(folder / f"bench-{{000000..{shards - 1:06d}}}.tar")


def job_config(args: argparse.Namespace, spec: str, out: Path | None = None):
    from pipeline.job.config import JobConfig

    return JobConfig.from_flags(input=spec, output=str(out or "unused"), model=args.model, num_frames=args.num_frames,
                     resolution=args.resolution, batch_size=args.batch_size, num_actors=1,
                     gpus_per_actor=1.0 if args.device == "cuda" else 0.0, decode_workers=args.decode_workers,
                     overwrite=True, progress_seconds=60, check_every=getattr(args, "check_every", None))


def decode_capacity(args: argparse.Namespace, spec: str, tc: int) -> dict:
    """One decode worker's clips/s: every sample of the measured shards decoded here, on one core."""
    import torch

    from pipeline.reading import Sample, decode_clips, iter_samples, list_shards

    torch.set_num_threads(1)
    config = job_config(args, spec).read.for_model(tc)
    samples = [s for url in list_shards(spec).urls[1:] for s in iter_samples(url, config) if isinstance(s, Sample)]
    cores = os.sched_getaffinity(0)
    if args.decode_core is not None:
        os.sched_setaffinity(0, {args.decode_core})  # where the job's decode worker runs
    started, clips = time.perf_counter(), 0
    for sample in samples:
        clips += sum(1 for _ in decode_clips(sample, config))
    seconds = time.perf_counter() - started
    os.sched_setaffinity(0, cores)
    return {"clips": clips, "seconds": round(seconds, 3), "clips_per_second": round(clips / seconds, 2)}


def _encoder_loop(args: argparse.Namespace, spec: str, tc: int):
    """(one pass of the model over the pre-decoded clips, batched like the job batches them; clips per pass)."""
    import torch

    from pipeline.encode.batching import ClipBatcher, PendingClip, to_video
    from pipeline.dtypes import COMPUTE_DTYPES
    from pipeline.dtypes import resolve_dtype
    from pipeline.reading import Clip, list_shards, read_shard
    from wfvae import WFVAE

    read_config = job_config(args, spec).read.for_model(tc)
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)  # what the job's CPU encoder actor gets (1 CPU)
    vae = WFVAE.from_pretrained(args.model, device=device,
                                dtype=COMPUTE_DTYPES[resolve_dtype("auto", device.type == "cuda")])
    batches, batcher = [], ClipBatcher(args.batch_size)
    for url in list_shards(spec).urls[1:]:  # the shards the steady rate is taken on
        for item in read_shard(url, read_config):
            if isinstance(item, Clip) and (batch := batcher.add(PendingClip((0, 0), item.info, item.frames))):
                batches.append(batch)
        batches.extend(batcher.drain())  # the job flushes partial batches at each shard's end

    def run() -> None:
        for batch in batches:
            posterior = vae.encode(to_video([c.frames for c in batch], vae.device, vae.dtype))
            posterior.mean.cpu()
        if device.type == "cuda":
            torch.cuda.synchronize()

    return run, sum(len(b) for b in batches)


def encode_capacity(args: argparse.Namespace, spec: str, tc: int) -> dict:
    """Clips/s of the model alone on pre-decoded clips, batched like the job batches them."""
    run, clips = _encoder_loop(args, spec, tc)
    run()  # warm-up
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    return {"clips": clips, "seconds": round(seconds, 3), "clips_per_second": round(clips / seconds, 2)}


def _encode_until(args: argparse.Namespace, spec: str, tc: int, ready, stop) -> None:
    run, _ = _encoder_loop(args, spec, tc)
    run()
    ready.set()
    while not stop.is_set():
        run()


def decode_capacity_beside_encoder(args: argparse.Namespace, spec: str, tc: int) -> dict:
    """One decode worker's clips/s while the encoder runs flat out in another process: on a machine whose
    cores slow each other down when both compute, the least a worker can do beside the job's encoder
    (which in a decode-bound job computes only part of the time: the job's worker lies between the two)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    encoder = context.Process(target=_encode_until, args=(args, spec, tc, ready, stop), daemon=True)
    encoder.start()
    try:
        if not ready.wait(600):
            raise RuntimeError("the encoder process beside the decode measurement did not start")
        return decode_capacity(args, spec, tc)
    finally:
        stop.set()
        encoder.join(600)


def pin_decode_workers(stop, core: int) -> None:
    """Until ``stop``: moves every thread of every decode worker process to ``core`` (``--pin``)."""
    pinned: set[int] = set()
    while not stop.wait(0.1):
        for proc in Path("/proc").iterdir():
            try:
                if proc.name.isdigit() and int(proc.name) not in pinned and \
                        b"DecodeWorker" in (proc / "cmdline").read_bytes():
                    for task in (proc / "task").iterdir():
                        os.sched_setaffinity(int(task.name), {core})
                    pinned.add(int(proc.name))
            except OSError:
                pass  # gone meanwhile


def the_job(args: argparse.Namespace, spec: str, out: Path) -> dict:
    import threading

    import ray

    from pipeline.job.balance import run_balance
    from pipeline.job.driver import NAMESPACE, run_job
    from pipeline.output.layout import OutputLayout

    # A private local Ray instance with exactly --cpus CPUs (never another process's cluster).
    ray.init(address="local", num_cpus=args.cpus, num_gpus=1 if args.device == "cuda" else 0,
             namespace=NAMESPACE, logging_level="warning", include_dashboard=False)
    stop = threading.Event()
    if args.decode_core is not None:
        threading.Thread(target=pin_decode_workers, args=(stop, args.decode_core), daemon=True).start()
    try:
        started = time.perf_counter()
        summary = run_job(job_config(args, spec, out), log=lambda line: None)
        wall = time.perf_counter() - started
    finally:
        stop.set()
        ray.shutdown()
    records = sorted(OutputLayout(str(out)).read_commit_records(), key=lambda r: r.committed_at)
    steady = records[1:]  # the first shard also pays for starting the actor and the decode workers
    clips = sum(r.rows for r in steady)
    seconds = records[-1].committed_at - records[0].committed_at
    balance, first = run_balance(steady), summary.this_run.balance
    return {"clips": clips, "seconds": round(seconds, 3), "clips_per_second": round(clips / seconds, 2),
            "wall_seconds_with_startup": round(wall, 3), "errors": summary.samples_failed,
            "balance": asdict(balance) if balance else None,
            "balance_with_first_shard": asdict(first) if first else None,
            **_canary_share(steady, seconds)}


def _canary_share(records: list, seconds: float) -> dict:
    """With --check-every: the quality canary's checks and their share of the encoder's time."""
    canary = [r.canary for r in records if r.canary]
    if not canary:
        return {}
    spent = sum(c.seconds for c in canary)
    return {"canary_checks": sum(c.checked for c in canary), "canary_seconds": round(spent, 3),
            "canary_share": round(spent / seconds, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--standin", action="store_true", help="GPU-speed stand-in on CPU (see above)")
    parser.add_argument("--model", default=None, help="default: the demo model (the tiny one with --standin)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--shards", type=int, default=None, help="default 4 (30 with --standin)")
    parser.add_argument("--samples", type=int, default=12, help="samples per shard")
    parser.add_argument("--source-height", type=int, default=None, help="height of the re-encoded sources "
                                                                        "(default 360, 144 with --standin)")
    parser.add_argument("--num-frames", type=int, default=17)
    parser.add_argument("--resolution", type=int, default=None, help="default 256 (64 with --standin)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--decode-workers", type=int, default=1)
    parser.add_argument("--check-every", type=int, help="run the job with the quality canary (--check-every N) and "
                                                        "report its share of the encoder's time")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance (encoder + workers)")
    parser.add_argument("--pin", action="store_true", help="one decode worker on the last core, all else on the "
                        "others (the decode cores of a GPU node): the decode-bound case without CPU sharing")
    parser.add_argument("--out", type=Path, help="JSON results (default bench/results/pipeline-<mode>.json)")
    parser.add_argument("--tiny", action="store_true", help="the smallest run, seconds (TINY in this script)")
    args = parser.parse_args()
    if args.tiny:
        parser.set_defaults(**TINY)
        args = parser.parse_args()
    defaults = STANDIN if args.standin else {"model": str(ROOT / "demo" / "model"), "resolution": 256,
                                             "source_height": 360, "shards": 4}
    for name, value in defaults.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    args.resolution = (args.resolution, args.resolution)

    from wfvae.config import WFVAEConfig
    from wfvae.loading import resolve_source

    tc = WFVAEConfig.from_json(resolve_source(args.model)[0]).temporal_compression
    args.decode_core = None
    if args.pin:  # this process, Ray and the encoder on all cores but the last, which the decode worker gets alone
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) < 2 or args.decode_workers != 1:
            parser.error("--pin needs at least 2 cores and --decode-workers 1")
        os.sched_setaffinity(0, cores[:-1])
        args.decode_core = cores[-1]
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        spec = build_shards(Path(tmp) / "shards", args.shards, args.samples, args.num_frames, args.source_height)
        before = decode_capacity(args, spec, tc), encode_capacity(args, spec, tc)
        job = the_job(args, spec, Path(tmp) / "out")
        after = decode_capacity(args, spec, tc), encode_capacity(args, spec, tc)
        beside = decode_capacity_beside_encoder(args, spec, tc)
    import torch

    decode = round((before[0]["clips_per_second"] + after[0]["clips_per_second"]) / 2, 2)
    encode = round((before[1]["clips_per_second"] + after[1]["clips_per_second"]) / 2, 2)
    bound = min(decode * args.decode_workers, encode)
    result = {"machine": {"name": describe_machine(), "python": platform.python_version(), "torch": torch.__version__,
                          "cpus": os.cpu_count(), "device": args.device},
              "config": {k: v for k, v in vars(args).items() if k != "out"},
              "decode_capacity": {"before": before[0], "after": after[0], "clips_per_second": decode},
              "encode_capacity": {"before": before[1], "after": after[1], "clips_per_second": encode},
              "decode_capacity_beside_encoder": beside,
              "job": job, "ratio_to_bound": round(job["clips_per_second"] / bound, 3),
              "ratio_to_bound_beside_encoder": round(
                  job["clips_per_second"] / min(beside["clips_per_second"] * args.decode_workers, encode), 3)}
    print(f"decode capacity : {decode:8.2f} clips/s per worker (before {before[0]['clips_per_second']}, "
          f"after {after[0]['clips_per_second']})")
    print(f"  beside encoder: {beside['clips_per_second']:8.2f} clips/s per worker, the encoder running flat out "
          "in another process")
    print(f"encode capacity : {encode:8.2f} clips/s (before {before[1]['clips_per_second']}, "
          f"after {after[1]['clips_per_second']})")
    print(f"job, steady     : {job['clips_per_second']:8.2f} clips/s ({job['clips']} clips after the first shard; "
          f"{job['wall_seconds_with_startup']:.1f} s wall with Ray and actor start-up)")
    print(f"steady / min(decode x {args.decode_workers}, encode) = {result['ratio_to_bound']:.3f} "
          f"({result['ratio_to_bound_beside_encoder']:.3f} with decode measured beside the encoder)")
    print(f"balance         : {job['balance']['hint'] if job['balance'] else 'n/a'}")
    if "canary_share" in job:
        print(f"canary          : {job['canary_checks']} checks, {job['canary_seconds']:.1f} s = "
              f"{100 * job['canary_share']:.2f}% of the steady shards' time")
    mode = "standin" if args.standin else args.device
    out = args.out or ROOT / "bench" / "results" / f"pipeline-{mode}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
