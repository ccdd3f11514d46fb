"""--dry-run: shards by state, the output's fate, probed first samples and the estimate, without
Ray, weights or writes."""

from __future__ import annotations

import os
import time
from fractions import Fraction

import pytest

from pipeline.job.config import ConfigError, config_from_args, make_config
from pipeline.job.plan import Plan
from pipeline.job.dry_run import dry_run, format_dry_run
from pipeline.output.layout import OutputLayout
from pipeline.output.manifest import Manifest
from pipeline.output.records import CommitRecord, GivenUp
from pipeline.output.shard_writer import publish_shard
from pipeline.output.storage import write_json
from pipeline.reading import ErrorRecord, read_shard
from tests.support.jobs import REPO, SMALL_CLIPS, TINY_MODEL, run_cli
from tests.support.outputs import read_rows
from tests.support.shards import cut_inside, make_shard
from tests.support.videos import encode, index_frames, random_bytes, vfr_timestamps

SETTINGS = {"model": str(TINY_MODEL), "num_frames": 5, "resolution": "32x32", "latent_dtype": "float16"}


def job(dataset, out, **extra):
    return make_config({**SETTINGS, "input": dataset.spec, "output": str(out), **extra})


def config_read(config):
    return Plan(config).read_config


def start_output(config) -> OutputLayout:
    """The output folder as a real run of ``config`` on CPU creates it."""
    plan = Plan(config)
    layout = OutputLayout(config.where.output)
    write_json(layout.fs, layout.job_manifest, Manifest(plan.identity(on_gpu=False), config.public_dict()).to_dict())
    return layout


def test_shards_output_state_probes_and_estimate(dataset, tmp_path):
    """3 shards: part-000000 committed, part-000001 given up, part-000002 never run."""
    out = tmp_path / "out"
    config = job(dataset, out)
    layout = start_output(config)
    publish_shard(layout, CommitRecord("part-000000"), [], [], {})
    write_json(layout.fs, layout.given_up("part-000001"), GivenUp("part-000001.tar", 3, "x", 0).to_dict())
    before = sorted(p.relative_to(out) for p in out.rglob("*"))

    report = dry_run(config)
    assert report.output_state == "resumes"
    assert (report.committed, report.given_up) == (["part-000000"], ["part-000001"])
    assert report.to_encode == ["part-000001", "part-000002"]  # a run retries given-up shards
    assert [p.shard for p in report.probes] == ["part-000001", "part-000002"]
    for probe in report.probes:
        assert (probe.codec, probe.width, probe.height, probe.frames) == ("h264", 64, 48, 12)
        assert probe.fps == pytest.approx(25, rel=0.01) and probe.duration == pytest.approx(12 / 25, rel=0.01)
        assert probe.samples_in_shard == 5 and probe.key.endswith("v000")
        assert probe.clip_frames == [5] and probe.latent_shapes == [[4, 2, 4, 4]]
    estimate = report.estimate
    assert (estimate["samples"], estimate["clips"]) == (10, 10)  # broken samples are not known to be broken
    assert estimate["bytes_per_clip"] == 4 * 2 * 4 * 4 * 2 and estimate["bytes"] == 10 * 256
    text = format_dry_run(report)
    assert "to encode     2: part-000001, part-000002" in text and "h264 64x48" in text
    assert "latent [4, 2, 4, 4] float16 (mean)" in text and "~10 clips" in text
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before  # nothing written


def test_other_settings_are_refused_and_overwrite_starts_over(dataset, tmp_path):
    out = tmp_path / "out"
    first = job(dataset, out)
    layout = start_output(first)
    publish_shard(layout, CommitRecord("part-000000"), [], [], {})
    with pytest.raises(ConfigError, match="holds the output of a different job") as refused:
        dry_run(job(dataset, out, num_frames=9, clips="uniform:2"))
    assert "num_frames: 5 then, 9 now" in str(refused.value)
    over = dry_run(job(dataset, out, num_frames=9, overwrite=True))
    assert over.output_state.startswith("overwritten") and len(over.to_encode) == 3
    assert over.probes[0].clip_frames == [9] and over.probes[0].latent_shapes == [[4, 3, 4, 4]]


def test_a_different_job_exits_as_the_run_does(ray_head, dataset, tmp_path):
    """The dry run's exit status and message for an output it must refuse are the run's own."""
    out = tmp_path / "out"
    start_output(job(dataset, out))
    flags = ["--input", dataset.spec, "--output", str(out), *SMALL_CLIPS, "--num-frames", "9"]
    run = run_cli(ray_head, *flags, check=False, timeout=120)
    dry = run_cli(ray_head, *flags, "--dry-run", check=False, timeout=120)

    def errors(result) -> list[str]:
        return [line for line in result.stderr.splitlines() if line.startswith("error: ")]

    assert (run.returncode, dry.returncode) == (2, 2)
    assert errors(dry) == errors(run) and len(errors(run)) == 1
    assert "dry run" not in dry.stdout


def test_nothing_left_to_encode(dataset, tmp_path):
    config = job(dataset, tmp_path / "out")
    layout = start_output(config)
    for name in dataset.good:
        publish_shard(layout, CommitRecord(name), [], [], {})
    report = dry_run(config)
    assert (report.output_state, report.to_encode, report.probes) == ("resumes", [], [])
    assert {k: report.estimate[k] for k in ("shards", "samples", "clips", "bytes")} == \
        {"shards": 0, "samples": 0, "clips": 0, "bytes": 0}
    assert "would write   nothing" in format_dry_run(report)


def test_a_shard_cut_at_its_end_is_read_as_the_run_reads_it(tmp_path):
    """The run reads 3 of the 4 samples of a shard whose last sample is cut; so does the dry run."""
    folder = tmp_path / "shards"
    folder.mkdir()
    shard = make_shard([{"__key__": f"k{i}", "mp4": encode(index_frames(12)), "txt": "x"} for i in range(4)])
    (folder / "part-000000.tar").write_bytes(cut_inside(shard, "k3.mp4"))
    (folder / "part-000001.tar").write_bytes(shard)
    config = make_config({**SETTINGS, "input": str(folder / "*.tar"), "output": str(tmp_path / "o")})
    run_reads = [item for item in read_shard(str(folder / "part-000000.tar"), config_read(config))
                 if not isinstance(item, ErrorRecord)]
    cut, whole = dry_run(config).probes
    assert (cut.samples_in_shard, cut.shard_damage, cut.problem) == (len(run_reads), "TruncatedShard", None) == \
        (3, "TruncatedShard", None)
    assert cut.latent_shapes == [[4, 2, 4, 4]]
    assert (whole.samples_in_shard, whole.shard_damage) == (4, None)


def test_the_estimate_says_what_it_rests_on(tmp_path):
    """Of 3 shards a brace range names, one is missing: refused, unless allowed; then the 2 that exist are counted,
    and of their first samples one is not a video."""
    folder = tmp_path / "shards"
    folder.mkdir()
    (folder / "part-000000.tar").write_bytes(make_shard([{"__key__": "a", "mp4": encode(index_frames(12))},
                                                        {"__key__": "b", "mp4": encode(index_frames(12))}]))
    (folder / "part-000002.tar").write_bytes(make_shard([{"__key__": "c", "mp4": random_bytes(3000)},
                                                        {"__key__": "d", "mp4": encode(index_frames(12))}]))
    settings = {**SETTINGS, "input": str(folder / "part-{000000..000002}.tar"), "output": str(tmp_path / "o")}
    with pytest.raises(ConfigError, match=r"--input: 1 of the 3 shards .* do not exist .*part-000001\.tar.*"
                                          r"\(--allow-missing-shards\)"):
        dry_run(make_config(settings))
    report = dry_run(make_config({**settings, "allow_missing_shards": True}))
    assert report.missing == ["part-000001"] and report.shards == 2
    present, broken = report.probes
    assert broken.error_type == "UnreadableVideo" and present.latent_shapes == [[4, 2, 4, 4]]
    estimate = report.estimate
    assert estimate["based_on"] == {"shards_counted": 2, "samples_read": 2, "samples_with_clips": 1}
    assert (estimate["samples"], estimate["clips"]) == (4, 2)  # 2 a shard; half the first samples give a clip
    text = format_dry_run(report)
    assert "2 counted shard(s)" in text and "1 named that do not exist: part-000001" in text
    assert not (tmp_path / "o").exists()


def test_unreadable_or_short_first_samples_are_reported(tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    (folder / "a.tar").write_bytes(make_shard([{"__key__": "bad", "mp4": random_bytes(3000, seed=1), "txt": "x"},
                                              {"__key__": "ok", "mp4": encode(index_frames(12)), "txt": "y"}]))
    (folder / "b.tar").write_bytes(make_shard([{"__key__": "short", "mp4": encode(index_frames(3)), "txt": "z"}]))
    report = dry_run(make_config({**SETTINGS, "input": str(folder / "*.tar"), "output": str(tmp_path / "o")}))
    bad, short = report.probes
    assert bad.key == "bad" and bad.error_type == "UnreadableVideo" and bad.samples_in_shard == 2
    assert short.error_type == "VideoTooShort" and short.frames == 3 and not short.latent_shapes
    assert report.estimate["clips"] is None
    assert "would write   unknown" in format_dry_run(report)


def test_what_the_real_run_refuses_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="--input: .*no shards"):
        dry_run(make_config({**SETTINGS, "input": str(tmp_path / "*.tar"), "output": str(tmp_path / "o")}))


def test_the_cli_needs_no_ray(dataset, tmp_path):
    """With RAY_ADDRESS pointing nowhere, anything that started or joined Ray would fail or hang."""
    out = tmp_path / "out"
    env = {**os.environ, "RAY_ADDRESS": "127.0.0.1:9", "PYTHONPATH": str(REPO)}
    began = time.monotonic()
    result = run_cli(None, "--dry-run", "--input", dataset.spec, "--output", str(out), "--model", str(TINY_MODEL),
                     "--num-frames", "5", "--resolution", "32x32", env=env, timeout=120)
    assert time.monotonic() - began < 60
    assert "dry run: nothing is encoded" in result.stdout and "to encode     3" in result.stdout
    assert not out.exists()
    bad = run_cli(None, "--dry-run", "--model", str(tmp_path / "nowhere"), env=env, timeout=120, check=False)
    assert bad.returncode == 2 and "--model:" in bad.stderr




def test_shards_and_model_on_s3(dataset, local_s3, tmp_path):
    local_s3.create_bucket("dry-run")
    for path in sorted(dataset.folder.glob("*.tar")):
        local_s3.put("dry-run", f"shards/{path.name}", path.read_bytes())
    for path in TINY_MODEL.iterdir():
        local_s3.put("dry-run", f"model/{path.name}", path.read_bytes())
    config = make_config({**SETTINGS, "input": "s3://dry-run/shards/part-{000000..000002}.tar",
                          "output": "s3://dry-run/out", "model": "s3://dry-run/model/",
                          "storage_options": local_s3.storage_options})
    report = dry_run(config)
    assert report.output_state == "new" and len(report.to_encode) == 3
    assert [p.samples_in_shard for p in report.probes] == [5, 5, 5]
    assert all(p.latent_shapes == [[4, 2, 4, 4]] for p in report.probes)
    assert report.estimate["clips"] == 15


@pytest.mark.slow
def test_the_dry_run_predicts_the_shapes_and_provenance_the_job_writes(ray_head, tmp_path):
    """Rotation and pixel aspect choose the bucket: what the dry run predicts is what the job writes.
    One video a shard, since the dry run probes each shard's first sample."""
    folder = tmp_path / "shards"
    folder.mkdir()
    videos = [
        ("rotated", "mp4", encode(index_frames(20, 64, 128), rotation=90)),  # shown 64 wide, 128 high
        ("anamorphic", "mp4", encode(index_frames(20, 64, 64), sample_aspect=Fraction(2))),  # shown 128 x 64
        ("vfr", "mkv", encode(index_frames(59, 96, 96), container="matroska", timestamps=vfr_timestamps())),
    ]
    for i, (key, ext, data) in enumerate(videos):
        (folder / f"part-{i:06d}.tar").write_bytes(make_shard([{"__key__": key, ext: data, "txt": key}]))
    out = tmp_path / "out"
    flags = ["--input", str(folder / "part-{000000..000002}.tar"), "--output", str(out), "--model", str(TINY_MODEL),
             "--num-frames", "17", "--buckets", "64x128,128x64,96x96", "--batch-size", "2", "--clips", "first"]
    predicted = {p.key: (p.latent_shapes, p.estimated) for p in dry_run(config_from_args(flags)).probes}
    run_cli(ray_head, *flags, timeout=240)
    rows = read_rows(out)
    written = {r["key"]: ([r["latent_shape"]], r["source_frames_estimated"]) for r in rows}
    assert written == predicted
    assert {key: shapes[0][2:] for key, (shapes, _) in written.items()} == \
        {"rotated": [16, 8], "anamorphic": [8, 16], "vfr": [12, 12]}
    vfr = next(r for r in rows if r["key"] == "vfr")  # a first clip of a 59-frame mkv: the header's guess, marked
    assert vfr["source_frames_estimated"] is True and vfr["source_num_frames"] != 59
