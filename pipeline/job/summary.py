"""The job's closing summary, as it prints it (the summary itself is the output's: output/summary.py)."""

from __future__ import annotations

from ..output.quality import format_quality
from ..output.summary import OutputSummary


def format_summary(summary: OutputSummary) -> str:
    shards, run = summary.shards, summary.this_run
    failed = summary.samples_failed
    lines = [
        f"output        {summary.output}",
        f"shards        {shards.committed}/{shards.total} committed, {shards.given_up} given up, "
        f"{shards.pending} pending"
        + (f"; {shards.not_in_input} more committed earlier, no longer in the input (kept)" if shards.not_in_input
           else ""),
        f"clips         {summary.clips} encoded{_by_media(summary.media)}, {failed} sample{'' if failed == 1 else 's'} "
        "failed" + (f" ({_counts(summary.errors_by_type)})" if failed else ""),
        f"captions      {summary.captioned} of {summary.clips} clips have one",
    ]
    if summary.warnings_by_type:
        lines.append(f"warnings      {_counts(summary.warnings_by_type)} (encoded all the same; see errors/, level "
                     "warning)")
    if run is not None:
        lines.append(f"this run      {run.shards_encoded} shards, {run.clips} clips in {run.seconds:.1f} s "
                     f"({run.clips_per_second:.2f} clips/s), {run.shards_skipped} already committed"
                     + (f", {len(run.stale)} re-encoded because their source changed" if run.stale else ""))
    lines.append(f"stored        {sum(summary.bytes.values()) / 2**20:.1f} MiB")
    if run is not None and run.balance is not None:
        lines.append(f"limited by    {run.balance.hint}")
    stats = summary.latent_stats
    if stats.count:
        lines.append("latent mean   " + " ".join(f"{v:+.3f}" for v in stats.mean))
        lines.append("latent std    " + " ".join(f"{v:.3f}" for v in stats.std))
    if summary.quality:
        lines.append("quality       " + format_quality(summary.quality))
    if summary.given_up:
        lines.append(f"given up      {', '.join(summary.given_up)} (see _given_up/; a re-run retries them)")
    return "\n".join(lines)


def format_stopped(summary: OutputSummary) -> str:
    """The line that ends a run stopped by a signal."""
    shards, run = summary.shards, summary.this_run
    abandoned = f", {len(run.abandoned)} abandoned mid-shard" if run.abandoned else ""
    return (f"stopped by {run.stopped_by}: {shards.committed} of {shards.total} shards committed ({run.shards_encoded} "
            f"in this run{abandoned}), {shards.total - shards.committed} not; re-run the same command to encode the "
            "rest")


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name}: {count}" for name, count in counts.items())


def _by_media(media: dict[str, int]) -> str:
    """" (12 video clips, 3 images)" where the output holds images; nothing for videos alone."""
    if not media.get("image"):
        return ""
    return f" ({media.get('video', 0)} video clip{'' if media.get('video') == 1 else 's'}, {media['image']} " \
           f"image{'' if media['image'] == 1 else 's'})"
