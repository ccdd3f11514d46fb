"""End-to-end job throughput against encoder-only throughput on the same clips, in one run.

    python bench/pipeline.py                                  # CPU, demo model, 360p sources
    python bench/pipeline.py --device cuda --model chestnutlzj/WF-VAE-L-16Chn --source-height 720 \\
        --num-frames 33 --resolution 256 --batch-size 8 --decode-workers 12

1. Builds WebDataset shards of Big Buck Bunny segments re-encoded at ``--source-height``.
2. Encoder only: decodes every clip in-process first, then times the model on them alone, with
   the same batches, precision and thread count as the job's encoder actor.
3. End to end: runs the real job (local Ray, one encoder actor, decode tasks) on the shards and
   takes its steady-state rate from the shards' commit records (actor start-up and the first
   shard, which also starts the decode worker processes, excluded).
The ratio end-to-end / encoder-only says how well decoding hides behind encoding (target >= 0.9
when there are CPUs enough for decoding to keep up).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


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


def encoder_only(args: argparse.Namespace, spec: str, tc: int) -> dict:
    """Clips/s of the model alone on pre-decoded clips, batched like the job batches them."""
    import torch

    from pipeline.job.batching import ClipBatcher, PendingClip, to_video
    from pipeline.job.config import JobConfig
    from pipeline.job.driver import make_read_config
    from pipeline.job.encoder_actor import COMPUTE_DTYPES, resolve_dtype
    from pipeline.reading import Clip, list_shards, read_shard
    from wfvae import WFVAE

    job = JobConfig(input=spec, model=args.model, num_frames=args.num_frames, resolution=args.resolution)
    read_config = make_read_config(job, tc)
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)  # what the job's CPU encoder actor gets (1 CPU)
    vae = WFVAE.from_pretrained(args.model, device=device,
                                dtype=COMPUTE_DTYPES[resolve_dtype("auto", device.type == "cuda")])
    batches, batcher = [], ClipBatcher(args.batch_size)
    for url in list_shards(spec)[1:]:  # the shards the end-to-end rate is taken on
        for item in read_shard(url, read_config):
            if isinstance(item, Clip) and (batch := batcher.add(PendingClip((0, 0), item.info, item.frames))):
                batches.append(batch)
        batches.extend(batcher.drain())  # the job flushes partial batches at each shard's end
    clips = sum(len(b) for b in batches)

    def run() -> None:
        for batch in batches:
            vae.encode(to_video([c.frames for c in batch], vae.device, vae.dtype))
        if device.type == "cuda":
            torch.cuda.synchronize()

    run()  # warm-up
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    return {"clips": clips, "seconds": round(seconds, 3), "clips_per_second": round(clips / seconds, 3)}


def end_to_end(args: argparse.Namespace, spec: str, out: Path) -> dict:
    from pipeline.job.config import JobConfig
    from pipeline.job.driver import run_job
    from pipeline.output.layout import OutputLayout

    job = JobConfig(input=spec, output=str(out), model=args.model, num_frames=args.num_frames,
                    resolution=args.resolution, batch_size=args.batch_size, num_actors=1,
                    gpus_per_actor=1.0 if args.device == "cuda" else 0.0, decode_workers=args.decode_workers,
                    overwrite=True, progress_seconds=60, check_every=args.check_every)
    started = time.perf_counter()
    summary = run_job(job, log=lambda line: None)
    wall = time.perf_counter() - started
    records = sorted(OutputLayout(str(out)).commit_records().values(), key=lambda r: r["committed_at"])
    records = records[1:]  # the first shard also pays for starting the decode workers: warm-up
    clips = sum(r["rows"] for r in records)
    busy = sum(r["timings"]["total_seconds"] + r["timings"]["write_seconds"] for r in records)
    return {"clips": clips, "seconds": round(busy, 3), "clips_per_second": round(clips / busy, 3),
            "wall_seconds_with_startup": round(wall, 3), "errors": summary["errors"],
            "decode_wait_seconds": round(sum(r["timings"]["decode_wait_seconds"] for r in records), 3),
            "encode_seconds": round(sum(r["timings"]["encode_seconds"] for r in records), 3),
            **_canary_share(records, busy)}


def _canary_share(records: list[dict], busy: float) -> dict:
    """With --check-every: the quality canary's checks and their share of the encoder actor's time."""
    canary = [r["canary"] for r in records if r.get("canary")]
    if not canary:
        return {}
    seconds = sum(c["seconds"] for c in canary)
    return {"canary_checks": sum(c["checked"] for c in canary), "canary_seconds": round(seconds, 3),
            "canary_share": round(seconds / busy, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "demo" / "model"))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--samples", type=int, default=12, help="samples per shard")
    parser.add_argument("--source-height", type=int, default=360, help="height of the re-encoded sources")
    parser.add_argument("--num-frames", type=int, default=17)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--decode-workers", type=int, default=1)
    parser.add_argument("--check-every", type=int, help="run the job with the quality canary (--check-every N) and "
                                                        "report its share of the encoder actor's time")
    parser.add_argument("--out", type=Path, help="JSON results (default bench/results/pipeline-<device>.json)")
    args = parser.parse_args()
    args.resolution = (args.resolution, args.resolution)

    from wfvae.config import WFVAEConfig
    from wfvae.loading import resolve_source

    tc = WFVAEConfig.from_json(resolve_source(args.model)[0]).temporal_compression
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        spec = build_shards(Path(tmp) / "shards", args.shards, args.samples, args.num_frames, args.source_height)
        encoder = encoder_only(args, spec, tc)
        e2e = end_to_end(args, spec, Path(tmp) / "out")
    import torch

    result = {"machine": {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
                          "device": args.device},
              "config": {k: v for k, v in vars(args).items() if k != "out"},
              "encoder_only": encoder, "end_to_end": e2e,
              "ratio": round(e2e["clips_per_second"] / encoder["clips_per_second"], 3)}
    print(f"encoder only : {encoder['clips_per_second']:8.2f} clips/s ({encoder['clips']} clips)")
    print(f"end to end   : {e2e['clips_per_second']:8.2f} clips/s ({e2e['clips']} clips; "
          f"{e2e['wall_seconds_with_startup']:.1f} s wall with Ray and actor start-up)")
    print(f"ratio        : {result['ratio']:.3f}")
    if "canary_share" in e2e:
        print(f"canary       : {e2e['canary_checks']} checks, {e2e['canary_seconds']:.1f} s = "
              f"{100 * e2e['canary_share']:.2f}% of the encoder actor's time")
    out = args.out or ROOT / "bench" / "results" / f"pipeline-{args.device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
