"""The table of an output: shards committed, pending, given up; rows; errors; bytes; shapes; config."""

from __future__ import annotations

import json
import subprocess
import sys

from pipeline.inspect import describe_output, format_report
from tests.support.jobs import REPO


def _records(output):
    return [json.loads((output.out / "_committed" / f"{name}.json").read_text()) for name in output.committed]


def test_report_counts_shards_rows_errors_bytes_and_shapes(moments):
    report = describe_output(str(moments.out), input_spec=moments.all_input_spec)
    summary, records = report.summary, _records(moments)
    assert summary.shards.committed == 2 and len(report.given_up) == 1
    assert summary.shards.pending == 1 and report.pending == list(moments.never_run)
    assert list(report.given_up) == list(moments.given_up) and report.given_up["part-000001"]
    assert report.uncommitted_files == list(moments.given_up)
    assert summary.clips == 28 == sum(r["rows"] for r in records)
    assert summary.samples_failed == 2 and sum(summary.errors_by_type.values()) == 2
    assert summary.bytes["latents"] == sum(r["bytes"]["latents"] for r in records) > 0
    # per shard 4 landscape and 3 portrait videos (one broken), 2 clips each
    assert [(entry.shape, entry.dtype, entry.rows) for entry in report.latents] == \
        [([4, 2, 4, 4], "bfloat16", 16), ([4, 2, 8, 4], "bfloat16", 12)]
    manifest = json.loads((moments.out / "_job.json").read_text())
    assert report.manifest.config == manifest["config"] and report.manifest.config["store"] == "moments"
    written = json.loads((moments.out / "_summary.json").read_text())
    assert summary.latent_stats.mean == written["latent_stats"]["mean"]


def test_without_input_the_jobs_own_input_decides_what_is_pending(moments):
    assert describe_output(str(moments.out)).summary.shards.pending == 0
    unreachable = describe_output(str(moments.out), input_spec=str(moments.shards / "nothing-*.tar"))
    assert unreachable.summary.shards.pending is None and "no shards match" in unreachable.input_error
    assert "unknown (ValueError" in format_report(unreachable)


def test_table_lines(moments):
    table = format_report(describe_output(str(moments.out), input_spec=moments.all_input_spec))
    lines = {line.split("  ")[0].strip(): line for line in table.splitlines()}
    assert lines["shards committed"].split()[-1] == "2" and lines["shards given up"].split()[-1] == "1"
    assert lines["shards pending"].split()[2] == "1"
    assert "28 clips" in lines["rows"] and "samples failed" in lines
    assert "[4, 2, 8, 4]  bfloat16  12 rows" in table and "[4, 2, 4, 4]  bfloat16  16 rows" in table
    assert "without a commit marker: part-000001" in table
    assert "  buckets" in table and "32x32,64x32" in table and "  store" in table


def _cli(*args):
    return subprocess.run([sys.executable, str(REPO / "jobs" / "inspect_latents.py"), *args], capture_output=True,
                          text=True, timeout=300, cwd=REPO)


def test_cli_prints_the_table_and_json(moments):
    result = _cli(str(moments.out), "--input", moments.all_input_spec)
    assert result.returncode == 0, result.stderr
    assert "shards committed" in result.stdout and "given up" in result.stdout
    as_json = _cli(str(moments.out), "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["summary"]["clips"] == 28


def test_cli_refuses_a_folder_that_is_not_an_output(tmp_path):
    result = _cli(str(tmp_path))
    assert result.returncode == 2 and "has no _job.json" in result.stderr
    bad = _cli(str(tmp_path), "--storage-options", "[1]")
    assert bad.returncode == 2 and "--storage-options" in bad.stderr
