"""LatentDataset read speed: latents per second on one CPU core from local Parquet.

Writes (once, then reuses) an output folder in the job's exact format through the job's own
writer (``publish_shard`` + ``latent_row``): random 16x9x32x32 bfloat16 posteriors (mean and
logvar, like ``--store moments``), the shape of a 33-frame 256x256 clip of WF-VAE-L-16Chn.
The process pins itself to one core (``os.sched_setaffinity``) and runs torch with one
thread. Each configuration reads every row: one untimed pass (page cache, allocator), then
the median of ``--repeat`` timed passes. Prints a markdown table for docs/benchmarks.md.

    .venv/bin/python bench/dataset.py [--rows 4096] [--shards 4] [--repeat 5] [--folder DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402

from pipeline.dataset import LatentDataset  # noqa: E402
from bench.machine import describe_machine  # noqa: E402
from pipeline.job.rows import latent_row  # noqa: E402
from pipeline.output.layout import OutputLayout  # noqa: E402
from pipeline.output.manifest import make_manifest  # noqa: E402
from pipeline.output.shard_writer import ROW_GROUP_ROWS, publish_shard  # noqa: E402
from pipeline.output.stats import LatentStats  # noqa: E402
from pipeline.output.storage import write_json  # noqa: E402
from pipeline.reading import ClipInfo  # noqa: E402

SHAPE = (16, 9, 32, 32)
CHANNELS = SHAPE[0]

CONFIGS = [
    ("raw bf16 samples, every field (defaults)", {}),
    ("raw bf16 samples, fields=[key, caption]", {"fields": ["key", "caption"]}),
    ("raw bf16, shuffle=True (4-block windows)", {"shuffle": True}),
    ("raw bf16, batch_size=32 (bucketed, stacked)", {"batch_size": 32}),
    ("float32, normalize='model'", {"dtype": "float32", "normalize": "model"}),
    ("bf16, normalize='measured', batch_size=32", {"normalize": "measured", "batch_size": 32}),
    ("bf16, sample_posterior=True", {"sample_posterior": True}),
]


def write_output(folder: Path, rows: int, shards: int) -> None:
    """An output folder as the job writes it (random latents), unless one is already there."""
    layout = OutputLayout(str(folder))
    if layout.exists() and len(layout.committed_shards()) == shards:
        return
    generator = torch.Generator().manual_seed(0)
    metadata = {"model": "bench", "scale": [0.5] * CHANNELS, "shift": [0.1] * CHANNELS, "stored": "moments",
                "latent_dtype": "bfloat16", "latent_channels": CHANNELS, "temporal_compression": 4,
                "spatial_compression": 8}
    per_shard = rows // shards
    for s in range(shards):
        name = f"bench-{s:06d}"
        stats, out = LatentStats(), []
        for i in range(per_shard):
            mean = torch.randn(SHAPE, generator=generator) * 0.8 + 0.1
            logvar = torch.full(SHAPE, -4.0) + torch.randn(SHAPE, generator=generator) * 0.1
            info = ClipInfo(shard=name, key=f"{name}-{i:05d}", media_type="video", clip_index=0,
                            frame_indices=list(range(33)),
                            timestamps=[f / 24 for f in range(33)], source_fps=24.0, source_height=720,
                            source_width=1280, source_num_frames=240, height=256, width=256, num_frames=33,
                            fps=24.0, caption=f"a caption for clip {i} of shard {s}, about this long.",
                            meta='{"source": "bench"}')
            stats.add(mean)
            out.append(latent_row(info, name, mean, logvar, "bfloat16"))
        publish_shard(layout, name, out, [], metadata, {"url": f"bench://{name}.tar", "stats": stats.to_dict(),
                                                         "errors_by_type": {}})
        print(f"wrote {name}: {per_shard} rows", file=sys.stderr, flush=True)
    write_json(layout.fs, layout.job_manifest, make_manifest({"input": "bench"}, {}, {"source": "bench"}))


# The writer's first settings, kept as the baseline the job's format is measured against:
# zstd and dictionary encoding on every column. bf16 latents shrink only ~20% under zstd, and
# inflating them cost more than all the rest of reading, so the job stores `latent` raw.
ZSTD_EVERYWHERE = {"compression": "zstd", "use_dictionary": True}


def rewrite_output(source: Path, folder: Path) -> None:
    """A copy of ``source`` whose latents files use ZSTD_EVERYWHERE (same rows, same metadata)."""
    if (folder / "_job.json").exists():
        return
    for sub in ("latents", "_committed"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for path in sorted((source / "latents").glob("*.parquet")):
        pq.write_table(pq.read_table(path), folder / "latents" / path.name, row_group_size=ROW_GROUP_ROWS,
                       **ZSTD_EVERYWHERE)
    for path in (source / "_committed").glob("*.json"):
        shutil.copy(path, folder / "_committed" / path.name)
    shutil.copy(source / "_job.json", folder / "_job.json")


def rate(folder: Path, options: dict, repeat: int) -> tuple[float, int]:
    """Median latents/s over full passes, and rows per pass."""
    dataset = LatentDataset(str(folder), **options)

    def one_pass() -> int:
        count = 0
        for item in dataset:
            count += item["latent"].shape[0] if "batch_size" in options else 1
        return count

    rows = one_pass()
    times = []
    for epoch in range(repeat):
        dataset.set_epoch(epoch)
        start = time.perf_counter()
        assert one_pass() == rows
        times.append(time.perf_counter() - start)
    return rows / statistics.median(times), rows


def arrow_rate(folder: Path, repeat: int) -> float:
    """Median rows/s of pyarrow alone reading the latent column, row group by row group: the floor."""
    paths = sorted((folder / "latents").glob("*.parquet"))

    def one_pass() -> int:
        rows = 0
        for path in paths:
            file = pq.ParquetFile(path)
            for group in range(file.num_row_groups):
                rows += file.read_row_groups([group], columns=["latent"], use_threads=False).num_rows
        return rows

    rows = one_pass()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        one_pass()
        times.append(time.perf_counter() - start)
    return rows / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cpu", type=int, default=0, help="the core to pin to")
    parser.add_argument("--folder", type=Path, default=Path("/tmp/wfvae-bench-dataset"),
                        help="where the job-format output is written (and FOLDER-zstd beside it)")
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.cpu})
    torch.set_num_threads(1)
    job_format, zstd = args.folder, args.folder.with_name(args.folder.name + "-zstd")
    write_output(job_format, args.rows, args.shards)
    rewrite_output(job_format, zstd)

    def mib(folder: Path, column: str) -> float:
        """Stored size of one column over all files."""
        total = 0
        for path in (folder / "latents").glob("*.parquet"):
            metadata = pq.ParquetFile(path).metadata
            index = metadata.schema.names.index(column)
            total += sum(metadata.row_group(g).column(index).total_compressed_size
                         for g in range(metadata.num_row_groups))
        return total / 2**20

    print(f"## Dataset\n\n`bench/dataset.py`: `LatentDataset` over {args.rows} latents of {'x'.join(map(str, SHAPE))} "
          f"bfloat16 (+ logvar) in {args.shards} shards of local Parquet, warm page cache.\n")
    print(f"- Machine: **{describe_machine()}** (Python {platform.python_version()}, torch {torch.__version__}); one process "
          f"pinned to core {args.cpu} (`os.sched_setaffinity`), `torch.set_num_threads(1)`.")
    print(f"- Command: `.venv/bin/python bench/dataset.py --repeat {args.repeat}` (median of {args.repeat} full "
          "passes after an untimed one).")
    raw = args.rows * np.prod(SHAPE) * 2 / 2**20
    print(f"- Job format: as `publish_shard` writes it: `latent` neither compressed nor dictionary-encoded, every "
          f"other column zstd: `latent` {mib(job_format, 'latent'):.0f} MiB, `logvar` {mib(job_format, 'logvar'):.0f} "
          f"MiB (of {raw:.0f} MiB each raw). Baseline: the same rows with zstd and dictionary encoding on every "
          f"column (the writer's first settings): `latent` {mib(zstd, 'latent'):.0f} MiB, `logvar` "
          f"{mib(zstd, 'logvar'):.0f} MiB.\n")
    print("| configuration | job format latents/s | zstd everywhere latents/s |")
    print("| --- | ---: | ---: |")
    print(f"| pyarrow alone: `read_row_groups(columns=['latent'])`, no tensors | "
          f"{arrow_rate(job_format, args.repeat):,.0f} | {arrow_rate(zstd, args.repeat):,.0f} |", flush=True)
    for label, options in CONFIGS:
        ours, _ = rate(job_format, options, args.repeat)
        baseline, _ = rate(zstd, options, args.repeat)
        print(f"| {label} | {ours:,.0f} | {baseline:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
