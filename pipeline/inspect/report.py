"""The state of an output folder as one table: shards, rows, errors, bytes, latent shapes, config.

The run files' totals answer most of it without opening a commit record or a latents file (see
output/index.py); shapes and dtypes come from the two small ``latent_shape``/``latent_dtype``
columns of each committed file.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import numpy as np

from ..dataset.source import open_parquet
from ..dataset.tensors import latent_shapes
from ..job.canary import format_quality, quality_summary
from ..output.layout import OutputLayout, shard_name
from ..output.reader import read_job_output
from ..output.storage import read_json
from ..reading import list_shards


def describe_output(url: str, storage_options: dict[str, Any] | None = None,
                    input_spec: str | None = None) -> dict[str, Any]:
    """Pending shards are the input's shards neither committed nor given up; the input is the
    job's own unless ``input_spec`` is given, and is reported unknown if it cannot be listed."""
    output = read_job_output(OutputLayout(url, storage_options))
    layout, manifest, committed = output.layout, output.manifest, output.shards
    given_up = {name: read_json(layout.fs, layout.given_up(name)) for name in output.given_up}
    input_spec = input_spec or manifest.get("config", {}).get("input")
    pending: list[str] | None = None
    input_error = None
    if not input_spec:
        input_error = "_job.json names no input; pass --input"
    else:
        try:
            inputs = [shard_name(u) for u in list_shards(input_spec, storage_options).urls]
            pending = [name for name in inputs if name not in committed and name not in given_up]
        except (ValueError, OSError) as err:
            input_error = f"{type(err).__name__}: {err}"
    stats = output.stats
    files = {path.rsplit("/", 1)[-1][: -len(".parquet")] for path in layout.fs.glob(layout.latents("*"))}
    return {
        "output": layout.url,
        "created_at": manifest.get("created_at"),
        "code_version": manifest.get("code_version"),
        "fingerprint": manifest.get("fingerprint"),
        "model": {"source": manifest.get("model", {}).get("source"),
                  "weights_sha256": manifest.get("model", {}).get("weights_sha256")},
        "config": manifest.get("config", {}),
        "shards": {"committed": len(committed), "given_up": len(given_up),
                   "pending": None if pending is None else len(pending), "input": input_spec,
                   "input_error": input_error},
        "pending": pending,
        "given_up": {name: info.get("last_error") for name, info in given_up.items()},
        "uncommitted_files": sorted(files - set(committed)),
        "rows": output.rows,
        "samples_failed": output.errors,
        "errors_by_type": output.errors_by_type,
        "bytes": output.bytes,
        "stored": manifest.get("config", {}).get("store"),
        "latents": _shapes(layout, sorted(name for name, (rows, _) in committed.items() if rows)),
        "latent_stats": {"mean": stats.mean, "std": stats.std},
        # the merged canary results already carry their shards' names (no label is added)
        "quality": quality_summary({"": {"canary": output.totals.canary}}) if output.totals.canary else None,
    }


def _shapes(layout: OutputLayout, shards: list[str]) -> list[dict[str, Any]]:
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
    return [{"shape": list(shape), "dtype": dtype, "rows": n} for (dtype, shape), n in sorted(counts.items())]


def format_report(report: dict[str, Any]) -> str:
    shards = report["shards"]
    lines: list[tuple[str, str]] = [
        ("output", report["output"]),
        ("created", _when(report.get("created_at")) + f"  code {report.get('code_version')}  fingerprint "
                                                       f"{report.get('fingerprint')}"),
        ("model", f"{report['model']['source']}  weights sha256 {str(report['model']['weights_sha256'])[:16]}…"),
        ("shards committed", str(shards["committed"])),
        ("shards pending", "unknown (" + str(shards["input_error"]) + ")" if shards["pending"] is None
         else f"{shards['pending']}  (input: {shards['input']})"),
        ("shards given up", str(shards["given_up"])),
    ]
    lines += [("  " + name, str(error)) for name, error in report["given_up"].items()]
    if report["uncommitted_files"]:
        lines.append(("ignored", f"{len(report['uncommitted_files'])} latents file(s) without a commit marker: "
                                 + ", ".join(report["uncommitted_files"])))
    errors = report["errors_by_type"]
    lines += [
        ("rows", f"{report['rows']} clips"),
        ("samples failed", str(report["samples_failed"]) + (
            "  (" + ", ".join(f"{k}: {v}" for k, v in errors.items()) + ")" if errors else "")),
        ("bytes", f"latents {_mib(report['bytes']['latents'])}, errors {_mib(report['bytes']['errors'])}"),
        ("stored", f"{report['stored']}"),
    ]
    lines += [("latents" if i == 0 else "", f"{entry['shape']}  {entry['dtype']}  {entry['rows']} rows")
              for i, entry in enumerate(report["latents"])]
    stats = report["latent_stats"]
    if stats["mean"]:
        lines.append(("channel mean", " ".join(f"{v:+.3f}" for v in stats["mean"])))
        lines.append(("channel std", " ".join(f"{v:.3f}" for v in stats["std"])))
    lines.append(("quality", format_quality(report.get("quality"))))
    lines += [("  worst" if i == 0 else "", f"{e['psnr']:.2f} dB  {e.get('shard', '?')}  {e['key']} clip {e['clip']}")
              for i, e in enumerate((report.get("quality") or {}).get("worst", []))]
    lines.append(("config", ""))
    lines += [("  " + key, _value(key, value)) for key, value in sorted(report["config"].items())]
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
