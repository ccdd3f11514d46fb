"""LatentDataset read speed: samples per second on one CPU core from local Parquet, and bytes read per sample.

Writes (once, then reuses) an output folder in the job's format: random 16x9x32x32 bfloat16 posteriors
(mean and logvar, like ``--store moments``: the shape of a 33-frame 256x256 clip of WF-VAE-L-16Chn)
through the job's own writer (``publish_shard`` + ``latent_row``), each sample with a caption embedding
of 120 x 4096 bfloat16 (a T5-XXL-sized text encoder's) in ``text/<shard>.parquet``, written as the
output format specifies (tests/support/encoded_outputs.py, until the job writes it).

The process pins itself to one core (``os.sched_setaffinity``) and runs torch with one thread. Each
configuration reads every row: one untimed pass (page cache, allocator), then the median of
``--repeat`` timed passes; then one more pass counts the bytes it read: the stored size of the
column chunks of every row group the dataset asked for (what pyarrow fetches from storage).
Prints a markdown table for docs/benchmarks.md; ``--json FILE`` writes the figures.

    .venv/bin/python bench/dataset.py [--rows 2048] [--shards 4] [--repeat 3] [--folder DIR] [--json FILE]
    .venv/bin/python bench/dataset.py --tiny      # 64 rows, one pass each: seconds, for tests/bench
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402

from bench.machine import describe_machine  # noqa: E402
from pipeline.dataset import LatentDataset  # noqa: E402
from pipeline.dataset import shard_files  # noqa: E402
from pipeline.encode.rows import latent_row, text_row  # noqa: E402
from pipeline.output.layout import OutputLayout  # noqa: E402
from pipeline.output.manifest import Manifest, ModelIdentity, OutputIdentity  # noqa: E402
from pipeline.output.records import CommitRecord  # noqa: E402
from pipeline.output.shard_writer import TextRows, publish_shard  # noqa: E402
from pipeline.output.stats import LatentStats  # noqa: E402
from pipeline.output.storage import write_json  # noqa: E402
from pipeline.reading import ClipInfo  # noqa: E402

SHAPE = (16, 9, 32, 32)
CHANNELS = SHAPE[0]
TEXT_TOKENS, TEXT_DIM = 120, 4096

CONFIGS = [
    ("defaults: bf16 latent, every field, text embedding", {}),
    ("fields=[key, caption]: no text read", {"fields": ["key", "caption"]}),
    ("shuffle=True (4-block windows)", {"shuffle": True}),
    ("batch_size=32 (bucketed, text padded)", {"batch_size": 32}),
    ("float32, normalize='model'", {"dtype": "float32", "normalize": "model"}),
    ("bf16, normalize='measured', batch_size=32", {"normalize": "measured", "batch_size": 32}),
    ("bf16, sample_posterior=True", {"sample_posterior": True}),
]


def write_output(folder: Path, rows: int, shards: int) -> None:
    """An output folder as the job writes it (random latents and embeddings), unless one is already there."""
    layout = OutputLayout(str(folder))
    if layout.exists() and len(layout.committed_shards()) == shards and (folder / "text").exists():
        return
    generator = torch.Generator().manual_seed(0)
    metadata = {"model": "bench", "scale": [0.5] * CHANNELS, "shift": [0.1] * CHANNELS, "stored": "moments",
                "latent_dtype": "bfloat16", "latent_channels": CHANNELS, "temporal_compression": 4,
                "spatial_compression": 8}
    text_metadata = {"text_encoder": "bench", "text_dim": TEXT_DIM, "text_dtype": "bfloat16",
                     "max_text_tokens": TEXT_TOKENS}
    per_shard = rows // shards
    for s in range(shards):
        name = f"bench-{s:06d}"
        stats, out, texts = LatentStats(), [], []
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
            out.append(latent_row(info, name, mean, logvar, "bfloat16", text_row=i))
            embedding = torch.randn(TEXT_TOKENS, TEXT_DIM, generator=generator).to(torch.bfloat16)
            texts.append(text_row(info.key, embedding))
        publish_shard(layout, CommitRecord(name, url=f"bench://{name}.tar", source="bench", stats=stats), out, [],
                      metadata, TextRows(texts, text_metadata))
        print(f"wrote {name}: {per_shard} rows", file=sys.stderr, flush=True)
    write_json(layout.fs, layout.job_manifest,
               Manifest(OutputIdentity({}, ModelIdentity("bench")), {"input": "bench"}).to_dict())


def samples_in(item: dict) -> int:
    return item["latent"].shape[0] if item["latent"].dim() == 5 else 1


def rate(folder: Path, options: dict, repeat: int) -> tuple[float, int]:
    """Median samples/s over full passes, and samples per pass."""
    dataset = LatentDataset(str(folder), **options)

    def one_pass() -> int:
        return sum(samples_in(item) for item in dataset)

    rows = one_pass()
    times = []
    for epoch in range(repeat):
        dataset.set_epoch(epoch)
        start = time.perf_counter()
        assert one_pass() == rows
        times.append(time.perf_counter() - start)
    return rows / statistics.median(times), rows


@contextmanager
def counting_reads():
    """Adds up, per read the dataset asks for, the stored bytes of the column chunks of the row groups it spans."""
    counted = {"bytes": 0}
    real_read = shard_files.ShardFiles.read

    def read(self, kind, shard, rows, columns):
        file, starts, _ = self._file(kind, shard)
        metadata, wanted = file.metadata, set(columns)
        for group in np.unique(np.searchsorted(starts, rows, side="right") - 1).tolist():
            row_group = metadata.row_group(group)
            chunks = (row_group.column(i) for i in range(row_group.num_columns))
            counted["bytes"] += sum(chunk.total_compressed_size for chunk in chunks
                                    if chunk.path_in_schema.split(".")[0] in wanted)  # a list's leaf: name.list.element
        return real_read(self, kind, shard, rows, columns)

    shard_files.ShardFiles.read = read
    try:
        yield counted
    finally:
        shard_files.ShardFiles.read = real_read


def bytes_per_sample(folder: Path, options: dict) -> float:
    with counting_reads() as counted:
        rows = sum(samples_in(item) for item in LatentDataset(str(folder), **options))
    return counted["bytes"] / rows


def arrow_rate(folder: Path, repeat: int) -> float:
    """Median rows/s of pyarrow alone reading the latent and text columns, memory-mapped: the floor."""
    pairs = [(path, folder / "text" / path.name) for path in sorted((folder / "latents").glob("*.parquet"))]

    def one_pass() -> int:
        rows = 0
        for latents, text in pairs:
            for path, column in ((latents, "latent"), (text, "text_embedding")):
                file = pq.ParquetFile(path, memory_map=True)
                for group in range(file.num_row_groups):
                    count = file.read_row_groups([group], columns=[column], use_threads=False).num_rows
                    rows += count if column == "latent" else 0
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
    parser.add_argument("--rows", type=int, default=2048)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cpu", type=int, default=0, help="the core to pin to")
    parser.add_argument("--folder", type=Path, default=Path("/tmp/wfvae-bench-dataset-text"),
                        help="where the job-format output is written")
    parser.add_argument("--tiny", action="store_true", help="64 rows in 2 shards, one timed pass: seconds")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.tiny:
        args.rows, args.shards, args.repeat = 64, 2, 1
    os.sched_setaffinity(0, {args.cpu})
    torch.set_num_threads(1)
    write_output(args.folder, args.rows, args.shards)

    figures = {"machine": describe_machine(), "rows": args.rows, "repeat": args.repeat, "configs": []}
    print(f"## Dataset\n\n`bench/dataset.py`: `LatentDataset` over {args.rows} latents of {'x'.join(map(str, SHAPE))} "
          f"bfloat16 (+ logvar), each with a {TEXT_TOKENS} x {TEXT_DIM} bfloat16 caption embedding, in "
          f"{args.shards} shards of local Parquet, warm page cache.\n")
    print(f"- Machine: **{figures['machine']}** (Python {platform.python_version()}, torch {torch.__version__}); one "
          f"process pinned to core {args.cpu} (`os.sched_setaffinity`), `torch.set_num_threads(1)`.")
    print(f"- Command: `.venv/bin/python bench/dataset.py{' --tiny' if args.tiny else ''} --repeat {args.repeat}` "
          f"(median of {args.repeat} full passes after an untimed one).")
    print("- Bytes read: the stored size of the column chunks of every row group read, per sample.\n")
    floor = arrow_rate(args.folder, args.repeat)
    print("| configuration | samples/s | bytes read per sample |")
    print("| --- | ---: | ---: |")
    print(f"| pyarrow alone: `read_row_groups` of `latent` and `text_embedding`, no tensors | {floor:,.0f} | |",
          flush=True)
    figures["pyarrow_alone"] = floor
    for label, options in CONFIGS:
        per_second, rows = rate(args.folder, options, args.repeat)
        read = bytes_per_sample(args.folder, options)
        figures["configs"].append({"label": label, "options": options, "samples_per_second": per_second,
                                   "samples": rows, "bytes_per_sample": read})
        print(f"| {label} | {per_second:,.0f} | {read:,.0f} |", flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
