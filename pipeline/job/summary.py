"""The job's closing summary, built from every commit record (this run's and earlier ones)."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from ..output.layout import OutputLayout
from ..output.stats import LatentStats
from ..output.storage import write_json
from .balance import run_balance


def build_summary(layout: OutputLayout, all_shards: list[str], run: dict[str, Any]) -> dict[str, Any]:
    records = layout.commit_records()
    given_up = layout.given_up_shards()
    stats = LatentStats()
    errors_by_type: Counter = Counter()
    for record in records.values():
        stats = stats.merge(LatentStats.from_dict(record.get("stats")))
        errors_by_type.update(record.get("errors_by_type", {}))
    committed = set(records)
    pending = [name for name in all_shards if name not in committed and name not in given_up]
    # Which side limited this run: its own shards' encoder waits and decode-worker idle time.
    this_run = [r for r in records.values() if r.get("run_id") == run.get("run_id")]
    run = {**run, "balance": run_balance(this_run)}
    return {
        "output": layout.url,
        "finished_at": time.time(),
        "shards": {"total": len(all_shards), "committed": len(committed), "given_up": len(given_up),
                   "pending": len(pending)},
        "given_up": given_up,
        "clips": sum(r.get("rows", 0) for r in records.values()),
        "errors": sum(r.get("errors", 0) for r in records.values()),
        "errors_by_type": dict(sorted(errors_by_type.items())),
        "bytes": sum(sum(r.get("bytes", {}).values()) for r in records.values()),
        "latent_stats": {"channels": len(stats.sum), "values_per_channel": stats.count,
                         "mean": stats.mean, "std": stats.std},
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
        f"clips         {summary['clips']} encoded, {summary['errors']} sample{'' if summary['errors'] == 1 else 's'} failed "
        + (f"({', '.join(f'{k}: {v}' for k, v in summary['errors_by_type'].items())})" if summary["errors"] else ""),
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
    if summary["given_up"]:
        lines.append(f"given up      {', '.join(summary['given_up'])} (see _given_up/; a re-run retries them)")
    return "\n".join(lines)
