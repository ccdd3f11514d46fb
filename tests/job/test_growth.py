"""A dataset that grows is resumed: new shards are encoded, committed ones left as they are; a shard
whose tar was replaced under its name is encoded again, never kept with stale latents."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest

from .conftest import SMALL_CLIPS, run_cli, write_dataset


def _files(out):
    """Every file of an output but the ones each run rewrites, with its bytes and mtime."""
    return {p.relative_to(out): (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*")
            if p.is_file() and p.parent.name not in ("_runs", "_lease") and p.name != "_summary.json"}


def _rows(out, shard):
    return pq.read_table(out / "latents" / f"{shard}.parquet").to_pylist()


@pytest.mark.slow
def test_added_shards_are_encoded_and_committed_ones_left_untouched(ray_head, tmp_path):
    source = write_dataset(tmp_path / "all", shards=6, samples=3)
    shards = tmp_path / "shards"
    shards.mkdir()
    for s in range(4):
        shutil.copy(source.folder / f"part-{s:06d}.tar", shards)
    out, glob = tmp_path / "out", str(shards / "part-*.tar")
    run_cli(ray_head, "--input", glob, "--output", str(out), *SMALL_CLIPS)
    before = _files(out)

    for s in (4, 5):  # a new crawl lands beside the old shards
        shutil.copy(source.folder / f"part-{s:06d}.tar", shards)
    grown = run_cli(ray_head, "--input", glob, "--output", str(out), *SMALL_CLIPS)
    assert "6 shards, 4 already committed, 2 to encode" in grown.stdout
    after = _files(out)
    assert {path: after[path] for path in before} == before  # bytes and mtimes of the earlier shards
    summary = json.loads((out / "_summary.json").read_text())
    assert summary["shards"] == {"total": 6, "committed": 6, "given_up": 0, "pending": 0}
    assert summary["this_run"]["shards_encoded"] == 2 and summary["this_run"]["shards_skipped"] == 4

    clean = tmp_path / "clean"
    run_cli(ray_head, "--input", glob, "--output", str(clean), *SMALL_CLIPS)
    for s in range(6):
        assert _rows(out, f"part-{s:06d}") == _rows(clean, f"part-{s:06d}")
    clean_summary = json.loads((clean / "_summary.json").read_text())
    for key in ("clips", "errors", "bytes", "shards"):
        assert summary[key] == clean_summary[key], key
    stats, clean_stats = summary["latent_stats"], clean_summary["latent_stats"]  # float64 sums in another order
    assert stats["values_per_channel"] == clean_stats["values_per_channel"]
    assert stats["mean"] == pytest.approx(clean_stats["mean"], rel=1e-12)
    assert stats["std"] == pytest.approx(clean_stats["std"], rel=1e-12)

    fewer = run_cli(ray_head, "--input", str(shards / "part-00000[0-4].tar"), "--output", str(out), *SMALL_CLIPS)
    assert "5 shards, 5 already committed, 0 to encode" in fewer.stdout
    summary = json.loads((out / "_summary.json").read_text())
    assert summary["not_in_input"] == 1 and summary["shards"]["committed"] == 5
    assert summary["clips"] == clean_summary["clips"]  # the shard left out of the input is kept, and counted


@pytest.mark.slow
def test_a_shard_replaced_under_its_name_is_encoded_again(ray_head, tmp_path):
    data = write_dataset(tmp_path / "shards", shards=3, samples=4)
    out = tmp_path / "out"
    run_cli(ray_head, "--input", data.spec, "--output", str(out), *SMALL_CLIPS)
    before = _files(out)
    assert {r["key"] for r in _rows(out, "part-000001")} == set(data.good["part-000001"])

    replacement = write_dataset(tmp_path / "new", shards=2, samples=2)  # other content, same name
    shutil.copy(replacement.folder / "part-000001.tar", data.folder / "part-000001.tar")
    dry = run_cli(ray_head, "--input", data.spec, "--output", str(out), *SMALL_CLIPS, "--dry-run")
    assert "to encode     1: part-000001" in dry.stdout
    rerun = run_cli(ray_head, "--input", data.spec, "--output", str(out), *SMALL_CLIPS)
    assert "3 shards, 2 already committed, 1 to encode" in rerun.stdout
    summary = json.loads((out / "_summary.json").read_text())
    assert summary["this_run"]["stale"] == ["part-000001"] and summary["shards"]["committed"] == 3
    assert {r["key"] for r in _rows(out, "part-000001")} == set(replacement.good["part-000001"])
    after = _files(out)
    for shard in ("part-000000", "part-000002"):  # the unchanged shards are left as they were
        for kind in ("latents", "errors"):
            path = before[next(p for p in before if p.parent.name == kind and p.stem == shard)]
            assert after[next(p for p in after if p.parent.name == kind and p.stem == shard)] == path
    assert summary["clips"] == 2 * 4 + 2
    again = run_cli(ray_head, "--input", data.spec, "--output", str(out), *SMALL_CLIPS)
    assert "3 shards, 3 already committed, 0 to encode" in again.stdout
