"""Outputs as the encode job writes them, made in this process without Ray, for the dataset and
inspection tests.

``moments_output`` and ``mean_output`` encode real (tiny) videos with the tiny model, clip by clip,
with the job's own reader, row and publishing code, so the latents decode back to their source
frames; ``published_output`` writes random latents (milliseconds) where their values do not matter.
The job itself (Ray actors, dispatch, retries) is tested in tests/job.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.jobs import TINY_MODEL
from tests.support.shards import write_shards

TINY_ARGS = ["--model", str(TINY_MODEL), "--num-frames", "5", "--batch-size", "2", "--progress-seconds", "1"]
LANDSCAPE, PORTRAIT = (48, 64), (64, 32)  # -> buckets 32x32 and 64x32


@dataclass(frozen=True)
class EncodedOutput:
    out: Path
    shards: Path  # the folder of input tars
    input_spec: str  # what the job read
    all_input_spec: str  # every tar in the folder (one more than the job read)
    committed: tuple[str, ...]
    given_up: tuple[str, ...]
    never_run: tuple[str, ...]


def encode_in_process(input_spec: str, out: Path, args: list[str]) -> dict:
    """What ``jobs/encode_dataset.py --input input_spec --output out *args`` writes, on CPU in float32,
    for one attempt per shard and without Ray, through the job's own ``OutputSink``: ``_job.json``,
    each shard's latents, errors and commit marker, ``_given_up/`` for a shard whose publishing
    fails, the run's file and ``_summary.json``. Returns the summary."""
    from collections import Counter, defaultdict

    from pipeline.job.batching import DeviceStats, to_video
    from pipeline.job.config import config_from_args
    from pipeline.job.driver import Plan
    from pipeline.job.rows import error_row, latent_row
    from pipeline.job.summary import build_summary
    from pipeline.output.manifest import fingerprint
    from pipeline.output.records import CommitRecord, RunRecord
    from pipeline.output.sink import latents_metadata
    from pipeline.reading import ErrorRecord, read_shard
    from wfvae import WFVAE

    started = time.perf_counter()
    job = config_from_args(["--input", input_spec, "--output", str(out), *args])
    plan = Plan(job)  # lists the shards and checks the settings against the model, as the driver does
    sink, run_id = plan.sink, "in-process"
    output_settings = {**job.output_settings(), "dtype": "float32"}
    vae = WFVAE.from_pretrained(job.where.model)
    model = {"source": job.where.model, "weights_sha256": vae.weights_checksum(), "config": vae.config.to_dict(),
             "temporal_compression": vae.temporal_compression}
    sink.open(job.public_dict(), output_settings, model)
    metadata = latents_metadata(job.where.model, vae, model["weights_sha256"], store=job.latents.store,
                                latent_dtype=job.latents.latent_dtype, compute_dtype="float32",
                                fingerprint=fingerprint(output_settings))
    resume = sink.resume(plan.urls, plan.names, sink.state(), job.where.storage_options)
    run_file, encoded, given_up = sink.begin_run(run_id, list(plan.names)), [], []
    for url, name in zip(plan.urls, plan.names):
        stats, rows, errors, by_shape = DeviceStats(), [], [], defaultdict(list)
        for order, item in enumerate(read_shard(url, plan.read_config)):
            if isinstance(item, ErrorRecord):
                errors.append(error_row(item))
            else:
                by_shape[item.frames.shape].append((order, item))
        for clips in by_shape.values():  # one batch per shape; rows in input order below
            posterior = vae.encode(to_video([clip.frames for _, clip in clips], vae.device, vae.dtype))
            stats.add(posterior.mean)
            for index, (order, clip) in enumerate(clips):
                logvar = posterior.logvar[index] if job.latents.store == "moments" else None
                rows.append((order, latent_row(clip.info, name, posterior.mean[index], logvar,
                                               job.latents.latent_dtype)))
        rows = [row for _, row in sorted(rows, key=lambda item: item[0])]
        samples = len({row["key"] for row in rows} | {error["key"] for error in errors})
        record = CommitRecord(name, url=url, run_id=run_id, samples=samples, stats=stats.to_stats(),
                              errors_by_type=dict(Counter(e["error_type"] for e in errors)))
        try:
            encoded.append(sink.publish(record, rows, errors, metadata))
        except OSError as err:  # max_shard_attempts=1: given up at once, as the driver records it
            given_up.append(name)
            sink.give_up(url, 1, f"{type(err).__name__}: {err}")
    sink.finish_run(run_file, encoded, resume.tokens)
    seconds = time.perf_counter() - started
    clips = sum(r.rows for r in encoded)
    summary = build_summary(sink.layout, plan.names, RunRecord(
        run_id, seconds=round(seconds, 3), shards_encoded=len(encoded), clips=clips,
        clips_per_second=round(clips / seconds, 3), given_up=given_up), encoded)
    sink.write_summary(summary)
    return summary


def moments_output(base: Path) -> EncodedOutput:
    """3 of 4 shards run, 2 clips per video, mean and logvar in bfloat16, two bucket shapes;
    part-000001 cannot be written (its errors path is a folder), so it is given up after one attempt
    and leaves a latents file without a commit marker; part-000003 is never run (pending)."""
    root = base / "moments"
    result = EncodedOutput(root / "out", root / "shards", str(root / "shards" / "part-{000000..000002}.tar"),
                           str(root / "shards" / "part-{000000..000003}.tar"), ("part-000000", "part-000002"),
                           ("part-000001",), ("part-000003",))
    if (result.out / "_summary.json").exists():
        return result
    write_shards(result.shards, 8, shards=4, sizes=(LANDSCAPE, PORTRAIT), broken={5: "random"})
    (result.out / "errors" / "part-000001.parquet").mkdir(parents=True)
    summary = encode_in_process(result.input_spec, result.out, [
        *TINY_ARGS, "--buckets", "32x32,64x32", "--clips", "uniform:2", "--store", "moments",
        "--max-shard-attempts", "1"])
    assert summary["given_up"] == list(result.given_up)
    assert (result.out / "latents" / "part-000001.parquet").exists()
    assert not (result.out / "_committed" / "part-000001.json").exists()
    return result


def mean_output(base: Path) -> EncodedOutput:
    """One shard, the posterior mean only, stored as float16, 32x32."""
    root = base / "mean"
    result = EncodedOutput(root / "out", root / "shards", str(root / "shards" / "part-000000.tar"),
                           str(root / "shards" / "part-000000.tar"), ("part-000000",), (), ())
    if (result.out / "_summary.json").exists():
        return result
    write_shards(result.shards, 4, sizes=(LANDSCAPE, PORTRAIT))
    encode_in_process(result.input_spec, result.out, [*TINY_ARGS, "--resolution", "32x32",
                                                      "--latent-dtype", "float16"])
    return result


# Session fixtures, for conftests to import (``from tests.support.encoded_outputs import moments, mean_only``).
@pytest.fixture(scope="session")
def moments(tmp_path_factory) -> EncodedOutput:
    return moments_output(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def mean_only(tmp_path_factory) -> EncodedOutput:
    return mean_output(tmp_path_factory.getbasetemp())


# -- outputs written with the output package directly (no job run: milliseconds) ------------

def published_output(folder: Path, *, shards: int = 3, rows: int = 5, latent_dtype: str = "bfloat16",
                     store: str = "mean", uncommitted: tuple[int, ...] = (1,), seed: int = 0,
                     media_types: tuple[str, ...] = ("video",), clips: int = 1, text_dim: int | None = None,
                     text_dtype: str = "bfloat16", uncaptioned: tuple[int, ...] = (),
                     video_latent_frames: int = 2) -> EncodedOutput:
    """An output folder as the job writes it, through ``pipeline.output``: ``shards`` shards of ``rows``
    samples in two latent shapes, one error row each; the shards numbered in ``uncommitted`` are
    published and then lose their commit marker, as when a worker dies between the two.

    Sample i of a shard is a ``media_types[i % len(media_types)]``: a video has ``clips`` clips (latent
    t = ``video_latent_frames``), an image one (t = 1, fps null). With ``text_dim`` the job had a text
    encoder: every sample not numbered in ``uncaptioned`` has a caption, and ``text/<shard>.parquet``
    its embedding, of [2 + (shard + i) % 4, text_dim] values in ``text_dtype``, shared by the sample's
    clips. The defaults write what the job wrote before images and text (no ``media_type``/``text_row`` columns)."""
    import torch

    from pipeline.output.records import CommitRecord
    from pipeline.output.schema import LATENT_DTYPES, tensor_bytes
    from pipeline.output.sink import OutputSink
    from pipeline.output.stats import LatentStats

    sink = OutputSink(str(folder))
    layout = sink.layout
    settings = {"input": str(folder / "shards" / ("part-{000000..%06d}.tar" % (shards - 1))), "store": store,
                "latent_dtype": latent_dtype, "num_frames": 5}
    sink.open(settings, settings, {"weights_sha256": "0" * 64, "temporal_compression": 4})
    generator, text_generator = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
    metadata = {"stored": store, "latent_dtype": latent_dtype, "latent_channels": 4, "scale": [0.5] * 4,
                "shift": [0.25] * 4}
    with_spec_columns = text_dim is not None or "image" in media_types
    names = [f"part-{s:06d}" for s in range(shards)]
    for s, name in enumerate(names):
        stats, latent_rows, text_rows = LatentStats(), [], []
        for i in range(rows):
            key, captioned = f"{name}-v{i:02d}", i not in uncaptioned
            image = media_types[i % len(media_types)] == "image"
            text_row = None
            if text_dim is not None and captioned:
                text_row, length = len(text_rows), 2 + (s + i) % 4
                embedding = torch.randn(length, text_dim, generator=text_generator).to(LATENT_DTYPES[text_dtype])
                text_rows.append({"key": key, "text_embedding": tensor_bytes(embedding), "text_length": length})
            for clip in range(1 if image else clips):
                frames_t = 1 if image else video_latent_frames
                shape = (4, frames_t, 4, 4) if i % 2 == 0 else (4, frames_t, 8, 4)
                mean = torch.randn(*shape, generator=generator) * 3
                stored = mean.to(LATENT_DTYPES[latent_dtype])
                stats.add(stored.float())
                logvar = torch.randn(*shape, generator=generator).to(stored.dtype) if store == "moments" else None
                frames = [0] if image else [5 * clip + f for f in range(5)]
                row = {"key": key, "shard": name, "clip": clip, "frame_start": frames[0], "num_frames": len(frames),
                       "fps": None if image else 8.0, "height": 8 * shape[2], "width": 8 * shape[3],
                       "caption": f"caption {key}" if captioned else None, "meta": json.dumps({"s": s, "i": i}),
                       "latent": tensor_bytes(stored), "latent_shape": list(shape), "latent_dtype": latent_dtype,
                       "logvar": None if logvar is None else tensor_bytes(logvar), "frame_indices": frames,
                       "timestamps": [f / 8 for f in frames], "source_fps": None if image else 8.0,
                       "source_height": 8 * shape[2], "source_width": 8 * shape[3],
                       "source_num_frames": 1 if image else 12}
                if with_spec_columns:
                    row.update(media_type="image" if image else "video", text_row=text_row)
                latent_rows.append(row)
        errors = [{"key": f"{name}-broken", "shard": name, "stage": "decode", "error_type": "InvalidData",
                   "message": "not a video"}]
        if text_dim is not None:  # before the commit marker, as the job commits it
            write_text_file(layout, name, text_rows, {"text_encoder": "test-encoder", "text_dim": text_dim,
                                                      "text_dtype": text_dtype, "max_text_tokens": 8})
        sink.publish(CommitRecord(name, stats=stats, errors_by_type={"InvalidData": 1}),
                     _writable(latent_rows), errors, metadata)
        if with_spec_columns:
            add_image_and_text_columns(layout, name, latent_rows)
        if s in uncommitted:
            layout.fs.rm(layout.committed(name))
    committed = tuple(n for s, n in enumerate(names) if s not in uncommitted)
    return EncodedOutput(folder, folder / "shards", settings["input"], settings["input"], committed,
                         tuple(names[s] for s in uncommitted), ())


# -- images and text, as specified, until pipeline.output writes them (then these go) -------------

TEXT_ROW_GROUP_ROWS = 32


def write_text_file(layout, shard: str, rows: list[dict], metadata: dict) -> None:
    """``OUT/text/<shard>.parquet``: a row per captioned sample in input order (key, text_embedding as
    [text_length, text_dim] C-contiguous little-endian bytes, text_length), row groups of 32, the
    embedding stored raw like ``latent``, key-value metadata text_encoder/text_dim/text_dtype/max_text_tokens."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.output.schema import file_metadata
    from pipeline.output.storage import write_atomically

    schema = pa.schema([pa.field("key", pa.string(), nullable=False),
                        pa.field("text_embedding", pa.binary(), nullable=False),
                        pa.field("text_length", pa.int32(), nullable=False)]).with_metadata(file_metadata(metadata))
    table = pa.Table.from_pylist(rows, schema=schema)
    write_atomically(layout.fs, f"{layout.root}/text/{shard}.parquet", lambda file: pq.write_table(
        table, file, row_group_size=TEXT_ROW_GROUP_ROWS, use_dictionary=["key"],
        compression={"key": "zstd", "text_embedding": "none", "text_length": "zstd"}))


def _writable(rows: list[dict]) -> list[dict]:
    """Rows the output package's writer takes while its schema predates images (fps not nullable)."""
    from pipeline.output.schema import LATENTS_SCHEMA

    if LATENTS_SCHEMA.field("fps").nullable:
        return rows
    return [{**row, "fps": 0.0 if row["fps"] is None else row["fps"],
             "source_fps": 0.0 if row["source_fps"] is None else row["source_fps"]} for row in rows]


def add_image_and_text_columns(layout, shard: str, rows: list[dict]) -> None:
    """Rewrites ``latents/<shard>.parquet`` with ``media_type``, ``text_row`` and nullable ``fps``/``source_fps``
    when the writer's schema lacks them (same row groups, compression and metadata)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.output.schema import LATENTS_SCHEMA
    from pipeline.output.shard_writer import NO_DICTIONARY, ROW_GROUP_ROWS, UNCOMPRESSED
    from pipeline.output.storage import write_atomically

    if {"media_type", "text_row"} <= set(LATENTS_SCHEMA.names) and LATENTS_SCHEMA.field("fps").nullable:
        return
    path = layout.latents(shard)
    with layout.fs.open(path, "rb") as file:
        table = pq.read_table(file)
    for name in ("fps", "source_fps"):
        column = pa.array([row[name] for row in rows], pa.float32())
        table = table.set_column(table.schema.get_field_index(name), pa.field(name, pa.float32()), column)
    table = table.append_column(pa.field("media_type", pa.string(), nullable=False),
                                pa.array([row["media_type"] for row in rows], pa.string()))
    text_rows = pa.array([row["text_row"] for row in rows], pa.int32())
    table = table.append_column(pa.field("text_row", pa.int32()), text_rows)
    compression = {name: "none" if name in UNCOMPRESSED else "zstd" for name in table.column_names}
    dictionary = [name for name in table.column_names if name not in NO_DICTIONARY]
    write_atomically(layout.fs, path, lambda file: pq.write_table(table, file, row_group_size=ROW_GROUP_ROWS,
                                                                    compression=compression, use_dictionary=dictionary))
