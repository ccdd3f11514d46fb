"""The job's closing summary, built from every commit record (this run's and earlier ones)."""

from __future__ import annotations

import time
from typing import Any

from ..output.layout import OutputLayout
from ..output.reader import read_job_output
from ..output.storage import write_json
from .balance import run_balance
from .canary import format_quality, quality_summary


def build_summary(layout: OutputLayout, all_shards: list[str], run: dict[str, Any]) -> dict[str, Any]:
    output = read_job_output(layout, require_manifest=False)
    stats = output.stats
    committed = set(output.records)
    # this run's given-up shards count as given up even where their _given_up marker could not be written
    given_up = sorted(set(output.given_up) | {name for name in run.get("given_up", []) if name not in committed})
    pending = [name for name in all_shards if name not in committed and name not in given_up]
    # Which side limited this run: its own shards' encoder waits and decode-worker idle time.
    this_run = [r for r in output.records.values() if r.get("run_id") == run.get("run_id")]
    run = {**run, "balance": run_balance(this_run)}
    return {
        "output": layout.url,
        "finished_at": time.time(),
        "shards": {"total": len(all_shards), "committed": len(committed), "given_up": len(given_up),
                   "pending": len(pending)},
        "given_up": given_up,
        "clips": output.rows,
        "errors": output.errors,
        "errors_by_type": output.errors_by_type,
        "bytes": sum(output.bytes.values()),
        "latent_stats": {"channels": len(stats.sum), "values_per_channel": stats.count,
                         "mean": stats.mean, "std": stats.std},
        "quality": quality_summary(output.records),
        "this_run": run,
    }


def write_summary(layout: OutputLayout, summary: dict[str, Any]) -> None:
    write_json(layout.fs, layout.summary, summary)


def format_summary(summary: dict[str, Any]) -> str:
    shards, run = summary["shards"], summary["this_run"]
    lines = [
        f"output        {summary['output']}",
        f"shards        {shards['committed']}/{shards['total']} committed, {shards['given_up']} given up, "
        f"{shards['pending']} pending",
        f"clips         {summary['clips']} encoded, {summary['errors']} sample{'' if summary['errors'] == 1 else 's'} failed"
        + (f" ({', '.join(f'{k}: {v}' for k, v in summary['errors_by_type'].items())})" if summary["errors"] else ""),
        f"this run      {run['shards_encoded']} shards, {run['clips']} clips in {run['seconds']:.1f} s "
        f"({run['clips_per_second']:.2f} clips/s), {run['shards_skipped']} already committed",
        f"stored        {summary['bytes'] / 2**20:.1f} MiB",
    ]
    if run.get("balance"):
        lines.append(f"limited by    {run['balance']['hint']}")
    stats = summary["latent_stats"]
    if stats["channels"]:
        lines.append("latent mean   " + " ".join(f"{v:+.3f}" for v in stats["mean"]))
        lines.append("latent std    " + " ".join(f"{v:.3f}" for v in stats["std"]))
    if summary.get("quality"):
        lines.append("quality       " + format_quality(summary["quality"]))
    if summary["given_up"]:
        lines.append(f"given up      {', '.join(summary['given_up'])} (see _given_up/; a re-run retries them)")
    return "\n".join(lines)
