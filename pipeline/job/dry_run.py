"""``--dry-run``: what a run would do, without starting Ray or loading weights; a pre-flight check.

It refuses what the run would refuse, with the run's own checks and words (the caller exits
with the run's status), lists the shards (committed, given up, pending), and reads a few
shards still to encode as the run reads them: their samples counted by the run's rules from
the tar headers alone (on object stores, ranged reads that skip the video data), their first
sample opened by the run's own reader (`reading.probe_clips`: the same packets, clip plan and
picture geometry, one frame decoded), so the latent shapes it predicts are the ones the run
writes. Its estimate says which of these figures it rests on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..dtypes import ITEMSIZES
from ..output.layout import shard_name
from ..output.sink import OutputBusy, OutputConflict, OutputSink, OutputUnwritable
from ..reading import ErrorRecord, ReadConfig, Sample, SampleError, count_samples, iter_samples, probe_clips
from ..reading.records import SHARD_DAMAGE
from .config import ConfigError, JobConfig
from .errors import JobError
from .plan import PROBED_SHARDS, Plan



@dataclass
class SampleProbe:
    shard: str
    samples_in_shard: int | None = None  # the samples the run would read from it (None: the shard is unreadable)
    shard_damage: str | None = None  # the error type of the damage that ends the shard after `samples_in_shard`
    key: str | None = None
    bytes: int = 0
    codec: str | None = None
    height: int | None = None  # as displayed: rotation and pixel aspect applied, as the run sees it
    width: int | None = None
    stored_height: int | None = None
    stored_width: int | None = None
    rotation: int = 0
    pixel_aspect: float = 1.0
    duration: float | None = None  # seconds
    fps: float | None = None
    frames: int | None = None
    estimated: bool = False  # frames and fps from the container's header (as the run records them), not counted
    clip_frames: list[int] = field(default_factory=list)  # frames of each clip the job would take
    latent_shapes: list[list[int]] = field(default_factory=list)
    error_type: str | None = None  # the error row the run would write for it, if any
    problem: str | None = None  # why no clip would come from it


@dataclass
class DryRun:
    input: str
    output: str
    output_state: str  # "new", "resumes" or "overwritten (--overwrite ...)"
    shards: int
    committed: list[str]
    given_up: list[str]
    to_encode: list[str]  # pending and given-up shards (a run retries those)
    model: dict[str, Any]
    probes: list[SampleProbe]
    estimate: dict[str, Any]
    missing: list[str]  # shards the input names that do not exist (--allow-missing-shards)
    notes: list[str]  # the plan's notes, as the run prints them


def dry_run(job: JobConfig, probe_shards: int = PROBED_SHARDS) -> DryRun:
    """The run's pre-flight, exactly: every check the run makes before it starts its encoders, with the run's
    words: ConfigError for what the run refuses with exit 2 (settings, shards, the model, an output that cannot
    be written or holds a different job), JobError for another job holding the output (the run's exit 1,
    unless --wait)."""
    plan = Plan(job)
    model, config = plan.model, plan.read_config
    sink = OutputSink(job.where.output, job.where.storage_options)
    try:
        state = sink.preflight(plan.identity(), overwrite=job.where.overwrite, wait=job.where.wait)
    except (OutputConflict, OutputUnwritable) as err:
        raise ConfigError(str(err)) from None
    except OutputBusy as err:
        raise JobError(str(err)) from None
    left = sink.survey(plan.urls, plan.names, job.where.overwrite)  # what the run would find, stale shards included
    probes = [probe_shard(url, config, job.where.storage_options, model.spatial_compression, model.latent_dim)
              for url in left.todo[:probe_shards]]
    return DryRun(job.where.input, sink.url, state, len(plan.urls), left.committed, left.given_up,
                  [shard_name(u) for u in left.todo],
                  {"source": job.where.model, "latent_channels": model.latent_dim,
                   "temporal_compression": model.temporal_compression,
                   "spatial_compression": model.spatial_compression},
                  probes, _estimate(job, probes, len(left.todo)), plan.missing, plan.notes)


# -- probing -------------------------------------------------------------------------------

def probe_shard(url: str, config: ReadConfig, storage_options: dict[str, Any], spatial: int,
                channels: int) -> SampleProbe:
    """A shard's sample count and first sample, read as the run reads them; problems are reported, not raised."""
    result = SampleProbe(shard_name(url))
    count, damage = count_samples(url, config, storage_options)
    if damage is not None and damage.error_type not in SHARD_DAMAGE:  # missing, no access, ...: the run retries it
        result.problem = f"shard unreadable: {damage.error_type}: {damage.message}"
        return result
    result.shard_damage = damage.error_type if damage is not None else None
    result.samples_in_shard = count
    samples = iter_samples(url, config, storage_options)
    try:
        first = next((item for item in samples if isinstance(item, Sample) or item.stage == "shard"), None)
    finally:
        samples.close()
    if first is None or isinstance(first, ErrorRecord):
        result.problem = "no video sample in the shard" + (" before its damage" if damage else "")
    else:
        _probe_sample(first, config, spatial, channels, result)
    return result


def _probe_sample(sample: Sample, config: ReadConfig, spatial: int, channels: int, result: SampleProbe) -> None:
    result.key, result.bytes = sample.key, len(sample.media)
    try:
        video = probe_clips(sample, config)
    except SampleError as err:
        result.error_type, result.problem = err.record.error_type, f"{err.record.error_type}: {err.record.message}"
        return
    g, timing = video.geometry, video.timing
    result.codec, result.rotation, result.pixel_aspect = video.codec, g.rotation, g.pixel_aspect
    result.height, result.width = g.display_size
    result.stored_height, result.stored_width = g.stored_height, g.stored_width
    result.frames, result.estimated = timing.num_frames, timing.estimated
    if timing.fps is not None:  # None for an image
        result.fps, result.duration = round(timing.fps, 3), round(timing.duration, 3)
    if video.problem is not None:
        problem = video.problem
        result.error_type, result.problem = problem.error_type, f"{problem.error_type}: {problem.message}"
    tc = config.temporal_compression
    result.clip_frames = [clip.num_frames for clip in video.clips]
    result.latent_shapes = [[channels, 1 + (clip.num_frames - 1) // tc, clip.height // spatial, clip.width // spatial]
                            for clip in video.clips]


def _estimate(job: JobConfig, probes: list[SampleProbe], shards: int) -> dict[str, Any]:
    """Samples per shard from the shards whose samples were counted, clips per sample from the first
    samples that were read, bytes per clip from those that give clips; each count says how many."""
    counted = [p.samples_in_shard for p in probes if p.samples_in_shard is not None]
    sampled = [p for p in probes if p.key is not None]  # a failed first sample counts as no clips
    usable = [p for p in sampled if p.latent_shapes]
    based_on = {"shards_counted": len(counted), "samples_read": len(sampled), "samples_with_clips": len(usable)}
    if shards == 0:
        return {"shards": 0, "samples": 0, "clips": 0, "bytes": 0, "based_on": based_on}
    if not counted or not usable:
        return {"shards": shards, "samples": None, "clips": None, "bytes": None, "based_on": based_on}
    samples = round(np.mean(counted) * shards)
    clips_per_sample = np.mean([len(p.clip_frames) for p in sampled])
    itemsize = ITEMSIZES[job.latents.latent_dtype] * (2 if job.latents.store == "moments" else 1)
    bytes_per_clip = np.mean([int(np.prod(shape)) * itemsize for p in usable for shape in p.latent_shapes] or [0])
    clips = round(samples * clips_per_sample)
    shapes = sorted({tuple(shape) for p in usable for shape in p.latent_shapes})
    return {"shards": shards, "samples": samples, "clips": clips, "latent_shapes": [list(s) for s in shapes],
            "latent_dtype": job.latents.latent_dtype, "store": job.latents.store, "bytes_per_clip": int(bytes_per_clip),
            "bytes": int(clips * bytes_per_clip), "based_on": based_on}


# -- printing ------------------------------------------------------------------------------

def format_dry_run(report: DryRun, listed: int = 5) -> str:
    def names(items: list[str]) -> str:
        more = f" ... (+{len(items) - listed})" if len(items) > listed else ""
        return (": " + ", ".join(items[:listed]) + more) if items else ""

    model = report.model
    lines = [
        "dry run: nothing is encoded or written, no encoder started",
        f"input         {report.input}: {report.shards} shard(s)"
        + (f", {len(report.missing)} named that do not exist{names(report.missing)} (the run goes on without them)"
           if report.missing else ""),
        f"output        {report.output}: {report.output_state}",
        f"committed     {len(report.committed)}{names(report.committed)}",
        f"given up      {len(report.given_up)}{names(report.given_up)}"
        + (" (a run retries them)" if report.given_up else ""),
        f"to encode     {len(report.to_encode)}{names(report.to_encode)}",
        f"model         {model['source']}: {model['latent_channels']} latent channels, "
        f"{model['temporal_compression']}x temporal, {model['spatial_compression']}x spatial",
    ]
    for probe in report.probes:
        head = f"probe         {probe.shard}"
        if probe.samples_in_shard is not None:
            damage = f" before its damage ({probe.shard_damage})" if probe.shard_damage else ""
            head += f" ({probe.samples_in_shard} samples{damage})"
        if probe.key is None or probe.frames is None:  # no sample, or not a readable video
            lines.append(f"{head}: {probe.key + ': ' if probe.key else ''}{probe.problem}")
            continue
        shown = f"{probe.width}x{probe.height}"
        if (probe.stored_height, probe.stored_width) != (probe.height, probe.width):
            shown += f" (stored {probe.stored_width}x{probe.stored_height}" + \
                     (f", pixel aspect {probe.pixel_aspect:g}" if probe.pixel_aspect != 1 else "") + \
                     (f", rotated {probe.rotation}" if probe.rotation else "") + ")"
        timing = "an image" if probe.fps is None else \
            f"{probe.duration:.2f} s, {probe.frames} frames at {probe.fps:.2f} fps" + \
            (" (header estimate)" if probe.estimated else "")
        lines.append(f"{head}: {probe.key}: {probe.codec} {shown}, {timing}, {probe.bytes / 2**20:.2f} MiB")
        lines.append("                -> " + (probe.problem if probe.problem else
                                            f"{len(probe.clip_frames)} clip(s) of {_ranges(probe.clip_frames)} frames, "
                                            f"latent {_shapes(probe.latent_shapes)}"))
    lines += report.notes
    estimate, based_on = report.estimate, report.estimate["based_on"]
    if estimate["shards"] == 0:
        lines.append("would write   nothing: every shard is committed")
    elif estimate["clips"] is None:
        lines.append(f"would write   unknown: no probed sample gives a clip ({based_on['samples_read']} first "
                     f"sample(s) read from {len(report.probes)} probed shard(s))")
    else:
        lines.append(f"would write   ~{estimate['clips']} clips from ~{estimate['samples']} samples in "
                     f"{estimate['shards']} shard(s): latent {_shapes(estimate['latent_shapes'])} "
                     f"{estimate['latent_dtype']} ({estimate['store']}), {_size(estimate['bytes_per_clip'])} a clip, "
                     f"~{_size(estimate['bytes'])} in all (estimated from the samples of {based_on['shards_counted']} "
                     f"counted shard(s) and the clips of {based_on['samples_read']} first sample(s))")
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
