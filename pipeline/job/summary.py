"""The job's closing summary: the output's totals (from its run files, see output/index.py) and
this run's record."""

from __future__ import annotations

import time
from typing import Any

from ..output.index import OutputState
from ..output.layout import OutputLayout
from ..output.reader import read_job_output
from ..output.records import CommitRecord, RunRecord
from ..output.storage import write_json
from .balance import run_balance
from .canary import format_quality, quality_summary


def build_summary(layout: OutputLayout, all_shards: list[str], run: RunRecord | dict[str, Any],
                  records: list[CommitRecord] | None = None, state: OutputState | None = None) -> dict[str, Any]:
    """``all_shards``: the input's shard names; ``records``: this run's commit records (the driver
    keeps them; without them every commit record is read to find this run's: small outputs only);
    ``state``: the output's, if already read."""
    run = run if isinstance(run, RunRecord) else RunRecord.from_dict(run)
    state = state or read_job_output(layout, require_manifest=False).state
    if records is None:
        records = [r for r in layout.read_commit_records(sorted(state.shards)) if r.run_id == run.run_id]
    totals, committed = state.totals, state.shards
    inputs = set(all_shards)
    # this run's given-up shards count as given up even where their _given_up marker could not be written
    given_up = sorted((set(layout.given_up_shards()) | set(run.given_up)) - set(committed))
    given_up_in_input = [name for name in given_up if name in inputs]
    committed_in_input = sum(1 for name in all_shards if name in committed)
    # Which side limited this run: its own shards' encoder waits and decode-worker idle time.
    run_dict = {**run.to_dict(), "balance": run_balance([r.to_dict() for r in records])}
    return {
        "output": layout.url,
        "finished_at": time.time(),
        "shards": {"total": len(all_shards), "committed": committed_in_input, "given_up": len(given_up_in_input),
                   "pending": len(all_shards) - committed_in_input - len(given_up_in_input)},
        "not_in_input": len(committed) - committed_in_input,  # committed earlier, no longer listed: kept
        "given_up": given_up,
        "clips": totals.rows,
        "errors": totals.errors,
        "errors_by_type": dict(sorted(totals.errors_by_type.items())),
        "bytes": sum(totals.bytes.values()),
        "latent_stats": {"channels": len(totals.stats.sum), "values_per_channel": totals.stats.count,
                         "mean": totals.stats.mean, "std": totals.stats.std},
        # the merged canary results already carry their shards' names (no label is added)
        "quality": quality_summary({"": {"canary": totals.canary}}) if totals.canary else None,
        "this_run": run_dict,
    }


def write_summary(layout: OutputLayout, summary: dict[str, Any]) -> None:
    write_json(layout.fs, layout.summary, summary)


def format_summary(summary: dict[str, Any]) -> str:
    shards, run = summary["shards"], summary["this_run"]
    lines = [
        f"output        {summary['output']}",
        f"shards        {shards['committed']}/{shards['total']} committed, {shards['given_up']} given up, "
        f"{shards['pending']} pending"
        + (f"; {summary['not_in_input']} more committed earlier, no longer in the input (kept)"
           if summary.get("not_in_input") else ""),
        f"clips         {summary['clips']} encoded, {summary['errors']} sample{'' if summary['errors'] == 1 else 's'} failed"
        + (f" ({', '.join(f'{k}: {v}' for k, v in summary['errors_by_type'].items())})" if summary["errors"] else ""),
        f"this run      {run['shards_encoded']} shards, {run['clips']} clips in {run['seconds']:.1f} s "
        f"({run['clips_per_second']:.2f} clips/s), {run['shards_skipped']} already committed"
        + (f", {len(run['stale'])} re-encoded because their source changed" if run.get("stale") else ""),
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
