"""The state of an output folder as one table: the output's summary (the same record as the job's closing
summary), its given-up shards and why, its latent shapes, and the job that made it.

The run files' totals answer most of it without opening a commit record or a latents file (see
output/index.py); shapes and dtypes come from the two small ``latent_shape``/``latent_dtype``
columns of each committed file.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..dataset.source import open_parquet
from ..dataset.tensors import latent_shapes
from ..output.layout import OutputLayout, shard_name
from ..output.manifest import Manifest
from ..output.quality import format_quality
from ..output.reader import read_job_output
from ..output.summary import OutputSummary
from ..reading import list_shards


@dataclass(frozen=True)
class ShapeCount:
    shape: list[int]
    dtype: str
    rows: int


@dataclass
class OutputReport:
    summary: OutputSummary  # pending shards counted when the input could be listed
    manifest: Manifest
    input: str | None
    input_error: str | None  # why the input could not be listed
    pending: list[str] | None
    given_up: dict[str, str]  # shard -> its last error
    uncommitted_files: list[str]  # latents files without a commit marker (leftovers of interrupted attempts)
    latents: list[ShapeCount]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "summary": self.summary.to_dict(), "manifest": self.manifest.to_dict()}


def describe_output(url: str, storage_options: dict[str, Any] | None = None,
                    input_spec: str | None = None) -> OutputReport:
    """Pending shards are the input's shards neither committed nor given up; the input is the
    job's own unless ``input_spec`` is given, and is reported unknown if it cannot be listed."""
    output = read_job_output(OutputLayout(url, storage_options))
    layout, manifest = output.layout, output.manifest
    input_spec = input_spec or manifest.config.get("input")
    inputs, input_error = None, None
    if not input_spec:
        input_error = "_job.json names no input; pass --input"
    else:
        try:
            inputs = [shard_name(u) for u in list_shards(input_spec, storage_options).urls]
        except (ValueError, OSError) as err:
            input_error = f"{type(err).__name__}: {err}"
    summary = output.summary(inputs)
    given_up = {name: record.last_error for name, record in layout.read_given_up(list(output.given_up)).items()}
    pending = None if inputs is None else [n for n in inputs if n not in output.shards and n not in given_up]
    return OutputReport(summary, manifest, input_spec, input_error, pending, given_up,
                        sorted(set(layout.latents_files()) - set(output.shards)),
                        _shapes(layout, sorted(name for name, (rows, _) in output.shards.items() if rows)))


def _shapes(layout: OutputLayout, shards: list[str]) -> list[ShapeCount]:
    counts: Counter = Counter()
    for name in shards:
        file = open_parquet(layout, layout.latents(name))
        try:
            table = file.read(columns=["latent_shape", "latent_dtype"], use_threads=False)
        finally:
            file.close(force=True)
        shapes = latent_shapes(table.column("latent_shape"))
        dtypes = np.asarray(table.column("latent_dtype").to_pylist(), dtype=object)
        for dtype in set(dtypes.tolist()):
            unique, count = np.unique(shapes[dtypes == dtype], axis=0, return_counts=True)
            counts.update({(dtype, tuple(shape)): int(n) for shape, n in zip(unique.tolist(), count.tolist())})
    return [ShapeCount(list(shape), dtype, n) for (dtype, shape), n in sorted(counts.items())]


def format_report(report: OutputReport) -> str:
    summary, manifest = report.summary, report.manifest
    shards = summary.shards
    lines: list[tuple[str, str]] = [
        ("output", summary.output),
        ("created", _when(manifest.created_at) + f"  code {manifest.code_version}  fingerprint "
                                                 f"{manifest.identity.fingerprint}"),
        ("model", f"{manifest.model.source}  weights sha256 {str(manifest.model.weights_sha256)[:16]}…"),
        ("shards committed", str(shards.committed)),
        ("shards pending", "unknown (" + str(report.input_error) + ")" if report.pending is None
         else f"{len(report.pending)}  (input: {report.input})"),
        ("shards given up", str(len(report.given_up))),
    ]
    lines += [("  " + name, error) for name, error in report.given_up.items()]
    if report.uncommitted_files:
        lines.append(("ignored", f"{len(report.uncommitted_files)} latents file(s) without a commit marker: "
                                 + ", ".join(report.uncommitted_files)))
    errors = summary.errors_by_type
    media = ", ".join(f"{count} {kind}" for kind, count in summary.media.items())
    lines += [
        ("rows", f"{summary.clips} clips" + (f"  ({media})" if media else "")),
        ("captions", f"{summary.captioned} of {summary.clips} rows have one"),
        ("samples failed", str(summary.samples_failed) + (
            "  (" + ", ".join(f"{k}: {v}" for k, v in errors.items()) + ")" if errors else "")),
        *([("warnings", ", ".join(f"{k}: {v}" for k, v in summary.warnings_by_type.items()))]
          if summary.warnings_by_type else []),
        ("bytes", ", ".join(f"{kind} {_mib(size)}" for kind, size in summary.bytes.items())),
        ("stored", f"{manifest.config.get('store')}"),
    ]
    lines += [("latents" if i == 0 else "", f"{entry.shape}  {entry.dtype}  {entry.rows} rows")
              for i, entry in enumerate(report.latents)]
    stats = summary.latent_stats
    if stats.count:
        lines.append(("channel mean", " ".join(f"{v:+.3f}" for v in stats.mean)))
        lines.append(("channel std", " ".join(f"{v:.3f}" for v in stats.std)))
    lines.append(("quality", format_quality(summary.quality)))
    lines += [("  worst" if i == 0 else "", f"{clip.psnr:.2f} dB  {clip.shard or '?'}  {clip.key} clip {clip.clip}")
              for i, clip in enumerate(summary.quality.worst if summary.quality else [])]
    lines.append(("config", ""))
    lines += [("  " + key, _value(key, value)) for key, value in sorted(manifest.config.items())]
    width = max(len(label) for label, _ in lines) + 2
    return "\n".join(f"{label:<{width}}{value}".rstrip() for label, value in lines)


def _mib(size: int) -> str:
    return f"{size / 2**20:.2f} MiB"


def _when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp)) if timestamp else "unknown"


def _value(key: str, value: Any) -> str:
    """Settings as the job's flags take them: sizes as HxW, lists comma-separated."""
    if key == "resolution" and isinstance(value, list):
        return "x".join(map(str, value))
    if isinstance(value, list):
        return ",".join("x".join(map(str, v)) if isinstance(v, list) else str(v) for v in value)
    return str(value)
