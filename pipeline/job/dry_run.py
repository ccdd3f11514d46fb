"""``--dry-run``: what a run would do, without starting Ray or loading weights.

Lists the shards (committed, given up, pending), says whether the output folder would be
created, resumed or refused, probes the first sample of a few shards still to encode (codec,
size, duration, frame rate, with PyAV; the clips the job's clip policy would take from it), and
estimates what the run would write: clips, latent shape, bytes. Samples per shard are counted
from the probed shards' tar headers (on object stores, ranged reads that skip the video data).
"""

from __future__ import annotations

import os
import tarfile
import tempfile
from dataclasses import dataclass, field
from typing import Any

import av
import fsspec
import numpy as np

from ..output.layout import shard_name
from ..output.manifest import describe_differences
from ..output.schema import LATENT_DTYPES
from ..output.storage import read_json
from ..reading import ErrorRecord, ReadConfig, Sample, SampleError, iter_samples
from ..reading.clip_sampling import plan_clips
from ..reading.records import describe
from ..reading.spatial import output_size
from .config import JobConfig

PROBED_SHARDS = 3


@dataclass
class SampleProbe:
    shard: str
    key: str | None = None
    bytes: int = 0
    codec: str | None = None
    height: int | None = None
    width: int | None = None
    duration: float | None = None  # seconds
    fps: float | None = None
    frames: int | None = None
    clip_frames: list[int] = field(default_factory=list)  # frames of each clip the job would take
    latent_shapes: list[list[int]] = field(default_factory=list)
    samples_in_shard: int | None = None
    problem: str | None = None  # why no clip would come from it


@dataclass
class DryRun:
    input: str
    output: str
    output_state: str  # "new", "resumes", "overwritten (--overwrite)" or "refused: ..."
    shards: int
    committed: list[str]
    given_up: list[str]
    to_encode: list[str]  # pending and given-up shards (a run retries those)
    model: dict[str, Any]
    probes: list[SampleProbe]
    estimate: dict[str, Any]


def dry_run(job: JobConfig, probe_shards: int = PROBED_SHARDS) -> DryRun:
    """Raises ConfigError for what the real run would refuse (no shards, unreadable model, ...)."""
    from .driver import Plan  # imports Ray's API, starts nothing

    plan = Plan(job)  # the same checks as a real run, before Ray
    model, config, layout = plan.model, plan.read_config, plan.layout
    state = _output_state(plan)
    done = set() if job.where.overwrite else set(layout.committed_shards())
    given_up = [] if job.where.overwrite else layout.given_up_shards()
    to_encode = [url for url, name in zip(plan.urls, plan.names) if name not in done]
    probes = [probe_shard(url, config, job.where.storage_options, model.spatial_compression, model.latent_dim)
              for url in to_encode[:probe_shards]]
    return DryRun(job.where.input, layout.url, state, len(plan.urls), sorted(done & set(plan.names)),
                  [n for n in given_up if n in set(plan.names)], [shard_name(u) for u in to_encode],
                  {"source": job.where.model, "latent_channels": model.latent_dim,
                   "temporal_compression": model.temporal_compression,
                   "spatial_compression": model.spatial_compression},
                  probes, _estimate(job, probes, len(to_encode)))


def _output_state(plan) -> str:
    layout = plan.layout
    if not layout.exists():
        return "new"
    if plan.job.where.overwrite:
        return "overwritten (--overwrite deletes what it holds)"
    existing = read_json(layout.fs, layout.job_manifest)
    existing["output_settings"].pop("dtype", None)  # resolved on the cluster, from its devices
    settings = {**plan.job.output_settings(), "input_shards": plan.input_shards}
    settings.pop("dtype")
    wanted = {"output_settings": settings,
              "model": {"config": plan.model.to_dict()}}
    differences = describe_differences(existing, wanted)
    return f"refused: it holds a different job's output ({'; '.join(differences)})" if differences else "resumes"


# -- probing -------------------------------------------------------------------------------

def probe_shard(url: str, config: ReadConfig, storage_options: dict[str, Any], spatial: int,
                channels: int) -> SampleProbe:
    """The first sample of a shard, and the shard's sample count; problems are reported, not raised."""
    result = SampleProbe(shard_name(url))
    try:
        result.samples_in_shard = count_samples(url, storage_options)
    except (OSError, tarfile.TarError) as err:
        result.problem = f"shard unreadable: {describe(err)}"
        return result
    samples = iter_samples(url, config, storage_options)
    try:
        first = next((item for item in samples if isinstance(item, Sample) or item.stage == "shard"), None)
    finally:
        samples.close()
    if first is None:
        result.problem = "no video sample in the shard"
    elif isinstance(first, ErrorRecord):
        result.problem = f"{first.error_type}: {first.message}"
    else:
        _probe_sample(first, config, spatial, channels, result)
    return result


def _probe_sample(sample: Sample, config: ReadConfig, spatial: int, channels: int, result: SampleProbe) -> None:
    result.key, result.bytes = sample.key, len(sample.video)
    with tempfile.NamedTemporaryFile(suffix=f".{sample.video_ext}", dir=config.tmp_dir) as file:
        file.write(sample.video)
        file.flush()
        try:
            start_times, end = _probe_video(file.name, result)
        except (av.FFmpegError, OSError, ValueError, IndexError) as err:
            result.problem = f"not a readable video: {describe(err)}"
            return
    try:
        clips = plan_clips(start_times, end, config)
    except SampleError as err:
        result.problem = f"{err.record.error_type}: {err.record.message}"
        return
    height, width = output_size(result.height, result.width, config)
    tc = config.temporal_compression
    result.clip_frames = [len(clip) for clip in clips]
    result.latent_shapes = [[channels, 1 + (len(clip) - 1) // tc, height // spatial, width // spatial]
                            for clip in clips]


def _probe_video(path: str, result: SampleProbe) -> tuple[np.ndarray, float]:
    """Facts from the container and its packets' timestamps (demuxed, not decoded)."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        result.codec = stream.codec_context.name
        result.height, result.width = stream.codec_context.height, stream.codec_context.width
        base = float(stream.time_base)
        starts, ends = [], []
        for packet in container.demux(stream):
            if packet.pts is not None:
                starts.append(packet.pts * base)
                ends.append((packet.pts + (packet.duration or 0)) * base)
    if not starts:
        raise ValueError("no video frames")
    start_times = np.sort(np.asarray(starts, dtype=np.float64))
    end = max(ends)
    result.frames = len(start_times)
    result.duration = round(end - float(start_times[0]), 3)
    result.fps = round(result.frames / result.duration, 3) if result.duration > 0 else None
    return start_times, end


def count_samples(url: str, storage_options: dict[str, Any]) -> int:
    """Distinct sample keys in a tar, from its headers (members' data are skipped by seeking)."""
    fs, path = fsspec.core.url_to_fs(url, **storage_options)
    keys = set()
    with fs.open(path, "rb") as raw, tarfile.open(fileobj=raw, mode="r:") as tar:
        for member in tar:
            if member.isfile():
                name = os.path.basename(member.name)
                keys.add(os.path.join(os.path.dirname(member.name), name.split(".", 1)[0]))
    return len(keys)


def _estimate(job: JobConfig, probes: list[SampleProbe], shards: int) -> dict[str, Any]:
    counted = [p.samples_in_shard for p in probes if p.samples_in_shard is not None]
    sampled = [p for p in probes if p.key is not None]  # a failed first sample counts as no clips
    usable = [p for p in sampled if p.latent_shapes]
    if not counted or not usable:
        return {"shards": shards, "samples": None, "clips": None, "bytes": None}
    samples = round(np.mean(counted) * shards)
    clips_per_sample = np.mean([len(p.clip_frames) for p in sampled])
    itemsize = LATENT_DTYPES[job.latents.latent_dtype].itemsize * (2 if job.latents.store == "moments" else 1)
    bytes_per_clip = np.mean([int(np.prod(shape)) * itemsize for p in usable for shape in p.latent_shapes] or [0])
    clips = round(samples * clips_per_sample)
    shapes = sorted({tuple(shape) for p in usable for shape in p.latent_shapes})
    return {"shards": shards, "samples": samples, "clips": clips, "latent_shapes": [list(s) for s in shapes],
            "latent_dtype": job.latents.latent_dtype, "store": job.latents.store, "bytes_per_clip": int(bytes_per_clip),
            "bytes": int(clips * bytes_per_clip)}


# -- printing ------------------------------------------------------------------------------

def format_dry_run(report: DryRun, listed: int = 5) -> str:
    def names(items: list[str]) -> str:
        more = f" ... (+{len(items) - listed})" if len(items) > listed else ""
        return (": " + ", ".join(items[:listed]) + more) if items else ""

    model = report.model
    lines = [
        "dry run: nothing is encoded or written, no encoder started",
        f"input         {report.input}: {report.shards} shard(s)",
        f"output        {report.output}: {report.output_state}",
        f"committed     {len(report.committed)}{names(report.committed)}",
        f"given up      {len(report.given_up)}{names(report.given_up)}" + (" (a run retries them)" if report.given_up else ""),
        f"to encode     {len(report.to_encode)}{names(report.to_encode)}",
        f"model         {model['source']}: {model['latent_channels']} latent channels, "
        f"{model['temporal_compression']}x temporal, {model['spatial_compression']}x spatial",
    ]
    for probe in report.probes:
        head = f"probe         {probe.shard}"
        if probe.samples_in_shard is not None:
            head += f" ({probe.samples_in_shard} samples)"
        if probe.key is None or probe.frames is None:  # no sample, or not a readable video
            lines.append(f"{head}: {probe.key + ': ' if probe.key else ''}{probe.problem}")
            continue
        lines.append(f"{head}: {probe.key}: {probe.codec} {probe.width}x{probe.height}, {probe.duration:.2f} s, "
                     f"{probe.frames} frames at {probe.fps:.2f} fps, {probe.bytes / 2**20:.2f} MiB")
        lines.append("                -> " + (probe.problem if probe.problem else
                                            f"{len(probe.clip_frames)} clip(s) of {_ranges(probe.clip_frames)} frames, "
                                            f"latent {_shapes(probe.latent_shapes)}"))
    estimate = report.estimate
    if estimate["clips"] is None:
        lines.append("would write   unknown (no probed sample could be read)")
    else:
        lines.append(f"would write   ~{estimate['clips']} clips from ~{estimate['samples']} samples in "
                     f"{estimate['shards']} shard(s): latent {_shapes(estimate['latent_shapes'])} "
                     f"{estimate['latent_dtype']} ({estimate['store']}), {_size(estimate['bytes_per_clip'])} a clip, "
                     f"~{_size(estimate['bytes'])} in all (estimated from {len(report.probes)} probed shard(s))")
    return "\n".join(lines)


def _ranges(values: list[int]) -> str:
    return str(values[0]) if len(set(values)) == 1 else f"{min(values)}-{max(values)}"


def _shapes(shapes: list[list[int]]) -> str:
    unique = sorted({tuple(s) for s in shapes})
    return ", ".join("[" + ", ".join(map(str, s)) + "]" for s in unique)


def _size(count: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{int(count)} B"
