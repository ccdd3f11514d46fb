"""Every mistake caught before a GPU-hour is spent, at the shapes a new user met them: an input that does not
exist, a dry run as strict as the run, caption keys that match nothing, videos that end early, a killed
driver's local Ray runtime."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pipeline.output.layout import OutputLayout
from pipeline.output.lease import Lease
from tests.support.encoded_outputs import TINY_ARGS, encode_in_process
from tests.support.jobs import ENCODE, REPO, SMALL_CLIPS, TINY_MODEL, run_cli
from tests.support.outputs import read_rows, read_summary
from tests.support.shards import make_shard, write_shards
from tests.support.videos import cut_inside_frame, encode, index_frames


def cli(*args: str, env=None) -> subprocess.CompletedProcess:
    """The job's CLI with the tiny model; these end before Ray would start, or are dry runs (no Ray)."""
    return run_cli(None, *args, *SMALL_CLIPS, check=False, timeout=120, env=env)


def only_error_line(result: subprocess.CompletedProcess) -> str:
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    return errors[0]


@pytest.mark.parametrize("dry", [True, False], ids=["dry-run", "run"])
def test_an_input_that_does_not_exist_is_refused_and_nothing_is_written(dataset, tmp_path, dry):
    out = tmp_path / "out"
    flags = ["--dry-run"] if dry else []
    typo = cli("--input", str(dataset.folder) + "z", "--output", str(out), *flags)
    assert typo.returncode == 2 and f"{dataset.folder}z" in only_error_line(typo)
    gaps = cli("--input", str(dataset.folder / "part-{000000..000005}.tar"), "--output", str(out), *flags)
    line = only_error_line(gaps)
    assert gaps.returncode == 2 and "3 of the 6 shards" in line and "part-000003.tar" in line
    assert "--allow-missing-shards" in line
    assert not out.exists()


@pytest.mark.slow
def test_missing_shards_allowed_are_counted_by_the_summary(ray_head, dataset, tmp_path):
    out = tmp_path / "out"
    result = run_cli(ray_head, "--input", str(dataset.folder / "part-{000001..000004}.tar"), "--output", str(out),
                     *SMALL_CLIPS, "--allow-missing-shards")
    assert "2 shard(s) the input names do not exist" in result.stdout
    summary = read_summary(out)
    assert summary["shards"]["total"] == summary["shards"]["committed"] == 2 and summary["shards"]["missing"] == 2
    assert summary["this_run"]["missing"] == ["part-000003", "part-000004"]


def test_the_dry_run_refuses_what_the_run_refuses(dataset, tmp_path):
    # an output another live job holds: the run's status (1) and words; with --wait the run would wait
    held = tmp_path / "held"
    lease = Lease(OutputLayout(str(held)), "live0001", 60)
    lease.acquire()
    try:
        busy = cli("--input", dataset.spec, "--output", str(held), "--dry-run")
        assert busy.returncode == 1 and "is in use by another job: run live0001" in only_error_line(busy)
        assert cli("--input", dataset.spec, "--output", str(held), "--dry-run", "--wait").returncode == 0
    finally:
        lease.release()
    # an output that cannot be written
    for dry in (["--dry-run"], []):
        nope = cli("--input", dataset.spec, "--output", "/proc/nope", *dry)
        assert nope.returncode == 2 and "--output: cannot write to /proc/nope" in only_error_line(nope)
    # a model file instead of the model's folder: one line, before anything is written
    out = tmp_path / "out"
    for dry in (["--dry-run"], []):
        args = ["--input", dataset.spec, "--output", str(out), *dry, *SMALL_CLIPS]
        args[args.index("--model") + 1] = str(TINY_MODEL / "config.json")
        wrong = run_cli(None, *args, check=False, timeout=120)
        assert wrong.returncode == 2 and "not a weights file" in only_error_line(wrong), wrong.stderr
    assert not out.exists()
    assert not list(tmp_path.glob("**/.write-probe-*"))  # the writability probe leaves nothing


def test_a_caption_key_that_matches_nothing(tmp_path):
    """Set explicitly: refused, naming the parts the samples have; the default key: a note, the run goes on."""
    shards = tmp_path / "shards"
    shards.mkdir()
    video = encode(index_frames(12))
    (shards / "part-000000.tar").write_bytes(make_shard(
        [{"__key__": f"k{i}", "mp4": video, "json": {"caption": f"a caption {i}"}} for i in range(2)]))
    for key in ("json:nope", "json.caption"):
        refused = cli("--input", str(shards / "*.tar"), "--output", str(tmp_path / "out"), "--caption-key", key,
                      "--dry-run")
        line = only_error_line(refused)
        assert refused.returncode == 2 and f"'{key}'" in line and "['json', 'mp4']" in line, line
    noted = cli("--input", str(shards / "*.tar"), "--output", str(tmp_path / "out"), "--dry-run")
    assert noted.returncode == 0 and "note: no caption in the first sample of 1 shard(s)" in noted.stdout
    found = cli("--input", str(shards / "*.tar"), "--output", str(tmp_path / "out"), "--caption-key",
                "json:caption", "--dry-run")
    assert found.returncode == 0 and "note:" not in found.stdout


def test_abbreviated_flags_are_refused():
    result = run_cli(None, "--num-frame", "17", "--dry-run", check=False, timeout=60)
    assert result.returncode == 2 and "unrecognized arguments: --num-frame" in result.stderr


@pytest.mark.parametrize("clips", ["whole", "uniform:3"])
def test_a_video_that_ends_early_keeps_what_it_holds_and_says_so(tmp_path, clips):
    """A cut mp4 whose header claims 40 frames holds 21: the rows keep what decodes, marked; a warning row says it;
    the summary counts it apart from failed samples."""
    shards = tmp_path / "shards"
    shards.mkdir()
    cut = cut_inside_frame(encode(index_frames(40), faststart=True, options={"bf": "0"}), 21)
    (shards / "part-000000.tar").write_bytes(make_shard(
        [{"__key__": "whole", "mp4": encode(index_frames(40)), "txt": "a"}, {"__key__": "cut", "mp4": cut,
                                                                             "txt": "b"}]))
    out = tmp_path / "out"
    summary = encode_in_process(str(shards / "part-000000.tar"), out, [*TINY_ARGS, "--resolution", "32x32",
                                                                      "--clips", clips])
    rows = [row for row in read_rows(out) if row["key"] == "cut"]
    errors = read_rows(out, "errors")
    assert [(e["key"], e["error_type"], e["level"]) for e in errors] == [("cut", "EndedEarly", "warning")]
    assert "21 whole frames of the 40 its header claims" in errors[0]["message"]
    assert rows and all(row["source_ended_early"] and row["source_num_frames"] == 21 for row in rows)
    assert max(index for row in rows for index in row["frame_indices"]) < 21
    assert len(rows) == (1 if clips == "whole" else 3)
    assert summary.warnings_by_type == {"EndedEarly": 1} and summary.samples_failed == 0
    assert all(row["source_ended_early"] is False for row in read_rows(out) if row["key"] == "whole")


@pytest.mark.slow
def test_a_killed_driver_leaves_no_ray_process_of_the_runtime_it_started(dataset, tmp_path):
    """With its own local Ray runtime (--ray-address local), SIGKILL mid-run: a moment later no process holds a
    file of that runtime's session (Ray alone leaves its dashboard and runtime-env agents running)."""
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    job = subprocess.Popen([*ENCODE, "--input", dataset.spec, "--output", str(out), *SMALL_CLIPS, "--ray-address",
                            "local"], env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        session = None
        while time.monotonic() < deadline and session is None:
            sessions = [p for p in Path("/tmp/ray").glob(f"session_*_{job.pid}") if (p / "logs").exists()]
            if sessions and (out / "_committed").exists():
                session = sessions[0]
            time.sleep(0.2)
        assert session is not None, "the job never started its runtime and committed a shard"
        assert holders(session), "the runtime's processes hold its files while it runs"
        job.send_signal(signal.SIGKILL)
        job.wait(timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and holders(session):
            time.sleep(0.2)
        assert holders(session) == []
    finally:
        job.kill()
        shutil.rmtree(session, ignore_errors=True) if session else None


def holders(session: Path) -> list[int]:
    from pipeline.job.local_ray import holders as find

    return find(str(session), os.getpid())
