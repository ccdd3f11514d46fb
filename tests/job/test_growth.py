"""A dataset that grows is resumed: new shards are encoded, committed ones left as they are; a shard
whose tar was replaced under its name is encoded again, never kept with stale latents."""

from __future__ import annotations

import shutil

import pytest

from pipeline.job.config import config_from_args
from pipeline.job.dry_run import dry_run
from tests.support.jobs import SMALL_CLIPS, run_cli
from tests.support.outputs import read_rows, read_summary, shard_counts, shards_by_state
from tests.support.shards import write_shards


def _files(out):
    """Every file of an output but the ones each run rewrites, with its bytes and mtime."""
    return {p.relative_to(out): (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*")
            if p.is_file() and p.parent.name not in ("_runs", "_lease") and p.name != "_summary.json"}


@pytest.mark.slow
def test_added_shards_are_encoded_and_committed_ones_left_untouched(ray_head, tmp_path):
    source = write_shards(tmp_path / "all", 3, shards=6)
    shards = tmp_path / "shards"
    shards.mkdir()
    for s in range(4):
        shutil.copy(source.folder / f"part-{s:06d}.tar", shards)
    out, glob = tmp_path / "out", str(shards / "part-*.tar")
    run_cli(ray_head, "--input", glob, "--output", str(out), *SMALL_CLIPS)
    before = _files(out)

    for s in (4, 5):  # a new crawl lands beside the old shards
        shutil.copy(source.folder / f"part-{s:06d}.tar", shards)
    run_cli(ray_head, "--input", glob, "--output", str(out), *SMALL_CLIPS)
    after = _files(out)
    assert {path: after[path] for path in before} == before  # bytes and mtimes of the earlier shards
    assert shard_counts(out) == (6, 4, 2)
    summary = read_summary(out)
    assert shards_by_state(summary) == (6, 6, 0, 0)

    clean = tmp_path / "clean"
    run_cli(ray_head, "--input", glob, "--output", str(clean), *SMALL_CLIPS)
    for s in range(6):
        assert read_rows(out, shards=[f"part-{s:06d}"]) == read_rows(clean, shards=[f"part-{s:06d}"])
    clean_summary = read_summary(clean)
    for key in ("clips", "samples_failed", "bytes", "shards"):
        assert summary[key] == clean_summary[key], key
    stats, clean_stats = summary["latent_stats"], clean_summary["latent_stats"]  # float64 sums in another order
    assert stats["count"] == clean_stats["count"]
    assert stats["mean"] == pytest.approx(clean_stats["mean"], rel=1e-12)
    assert stats["std"] == pytest.approx(clean_stats["std"], rel=1e-12)

    run_cli(ray_head, "--input", str(shards / "part-00000[0-4].tar"), "--output", str(out), *SMALL_CLIPS)
    assert shard_counts(out) == (5, 5, 0)
    summary = read_summary(out)
    assert summary["shards"]["not_in_input"] == 1 and summary["shards"]["committed"] == 5
    assert summary["clips"] == clean_summary["clips"]  # the shard left out of the input is kept, and counted


@pytest.mark.slow
def test_a_shard_replaced_under_its_name_is_encoded_again(ray_head, tmp_path):
    data = write_shards(tmp_path / "shards", 4, shards=3)
    out = tmp_path / "out"
    run_cli(ray_head, "--input", data.spec, "--output", str(out), *SMALL_CLIPS)
    before = _files(out)
    assert {r["key"] for r in read_rows(out, shards=["part-000001"])} == set(data.good["part-000001"])

    replacement = write_shards(tmp_path / "new", 2, shards=2)  # other content, same name
    shutil.copy(replacement.folder / "part-000001.tar", data.folder / "part-000001.tar")
    flags = ["--input", data.spec, "--output", str(out), *SMALL_CLIPS]
    assert dry_run(config_from_args(flags)).to_encode == ["part-000001"]
    run_cli(ray_head, *flags)
    assert shard_counts(out) == (3, 2, 1)
    summary = read_summary(out)
    assert summary["this_run"]["stale"] == ["part-000001"] and summary["shards"]["committed"] == 3
    assert {r["key"] for r in read_rows(out, shards=["part-000001"])} == set(replacement.good["part-000001"])
    after = _files(out)
    for shard in ("part-000000", "part-000002"):  # the unchanged shards are left as they were
        for kind in ("latents", "errors"):
            path = before[next(p for p in before if p.parent.name == kind and p.stem == shard)]
            assert after[next(p for p in after if p.parent.name == kind and p.stem == shard)] == path
    assert summary["clips"] == 2 * 4 + 2
    run_cli(ray_head, *flags)
    assert shard_counts(out) == (3, 3, 0)
