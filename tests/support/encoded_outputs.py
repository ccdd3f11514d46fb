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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.jobs import TINY_MODEL
from tests.support.shards import write_shards

if TYPE_CHECKING:
    from pipeline.output.summary import OutputSummary

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


def encode_in_process(input_spec: str, out: Path, args: list[str]) -> OutputSummary:
    """What ``jobs/encode_dataset.py --input input_spec --output out *args`` writes, on CPU in float32, for one
    attempt per shard: the driver's steps (plan, the output sink's life) and the encoder's loop, without Ray
    (samples decoded in this process). A shard whose publishing fails is given up at once. Returns the summary."""
    from pipeline.encode.batching import images_per_batch
    from pipeline.encode.shard_loop import EncodeSettings, ShardLoop
    from pipeline.job.config import config_from_args
    from pipeline.job.plan import Plan
    from pipeline.output.layout import shard_name
    from pipeline.output.manifest import Manifest, ModelIdentity
    from pipeline.output.sink import OutputSink, latents_metadata
    from pipeline.reading import decoded_samples
    from wfvae import WFVAE

    started = time.perf_counter()
    job = config_from_args(["--input", input_spec, "--output", str(out), *args])
    plan = Plan(job)  # lists the shards and checks the settings against the model, as the driver does
    vae = WFVAE.from_pretrained(job.where.model)
    identity = plan.identity(on_gpu=False).with_encoders(ModelIdentity.of(vae, job.where.model))
    latents = job.latents
    images = job.run.image_batch_size or images_per_batch(job.run.batch_size, job.read.num_frames,
                                                          vae.temporal_compression)
    loop = ShardLoop(vae, EncodeSettings(job.run.batch_size, latents.latent_dtype, latents.store == "moments",
                                         image_batch_size=images))
    metadata = latents_metadata(vae, identity.model, store=latents.store, latent_dtype=latents.latent_dtype,
                                compute_dtype="float32", fingerprint=identity.fingerprint)
    sink = OutputSink(str(out))
    with sink.hold(plan.run_id, 60, log=lambda line: None):
        left = sink.start(plan.urls, plan.names, identity)
        sink.begin(Manifest(identity, job.public_dict()))
        for url in left.todo:
            encoded = loop.encode(shard_name(url), decoded_samples(url, plan.read_config))
            record = replace(encoded.record, url=url, run_id=plan.run_id)
            try:
                sink.committed(sink.publish(record, encoded.rows, encoded.errors, metadata))
            except OSError as err:
                sink.give_up(url, 1, f"{type(err).__name__}: {err}")
        return sink.finish(seconds=time.perf_counter() - started)


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
    assert summary.given_up == list(result.given_up)
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
    clips."""
    import torch

    from pipeline.output.layout import OutputLayout
    from pipeline.output.manifest import Manifest, ModelIdentity, OutputIdentity
    from pipeline.output.records import CommitRecord
    from pipeline.output.schema import LATENT_DTYPES, tensor_bytes
    from pipeline.output.shard_writer import TextRows, publish_shard
    from pipeline.output.stats import LatentStats
    from pipeline.output.storage import write_json

    layout = OutputLayout(str(folder))
    settings = {"input": str(folder / "shards" / ("part-{000000..%06d}.tar" % (shards - 1))), "store": store,
                "latent_dtype": latent_dtype, "num_frames": 5}
    manifest = Manifest(OutputIdentity(settings, ModelIdentity(weights_sha256="0" * 64, temporal_compression=4)),
                        settings)
    write_json(layout.fs, layout.job_manifest, manifest.to_dict())
    generator, text_generator = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
    metadata = {"stored": store, "latent_dtype": latent_dtype, "latent_channels": 4, "scale": [0.5] * 4,
                "shift": [0.25] * 4}
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
                       "source_num_frames": 1 if image else 12, "media_type": "image" if image else "video",
                       "text_row": text_row}
                latent_rows.append(row)
        errors = [{"key": f"{name}-broken", "shard": name, "stage": "decode", "error_type": "InvalidData",
                   "message": "not a video"}]
        text = TextRows(text_rows, {"text_encoder": "test-encoder", "text_dim": text_dim, "text_dtype": text_dtype,
                                    "max_text_tokens": 8}) if text_dim is not None else None
        publish_shard(layout, CommitRecord(name, stats=stats, errors_by_type={"InvalidData": 1}), latent_rows, errors,
                      metadata, text)
        if s in uncommitted:
            layout.fs.rm(layout.committed(name))
    committed = tuple(n for s, n in enumerate(names) if s not in uncommitted)
    return EncodedOutput(folder, folder / "shards", settings["input"], settings["input"], committed,
                         tuple(names[s] for s in uncommitted), ())
