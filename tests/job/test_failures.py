"""Failures cost only what they must: a killed actor, a killed driver, a shard that keeps failing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import ray

from pipeline.reading import ReadConfig, read_shard
from tests.support.jobs import SMALL_CLIPS, run_cli, start_cli
from tests.support.outputs import ids, read_rows, read_summary, shard_counts, shards_by_state
from tests.support.shards import write_shards


def _wait_for(condition, timeout: float, what: str, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def _encoder_actor(address: str):
    """(handle, progress) of the running job's encoder actor, once it reports a shard in progress.
    ``address``: the test's head (other Ray instances may run on the machine)."""
    from ray.util.state import list_actors

    for actor in list_actors(address=address,
                             filters=[("class_name", "=", "EncoderActor"), ("state", "=", "ALIVE")]):
        if actor.name:
            handle = ray.get_actor(actor.name, namespace="wfvae-latents")
            try:
                progress = ray.get(handle.progress.remote(), timeout=5)
            except Exception:
                continue
            if progress.clips >= 1:
                return handle, progress
    return None


def _no_encoder_actor(address: str) -> bool:
    """Whether no encoder actor's process is left: a killed driver's actors die with it, but not at once (one
    may still commit the shard it was publishing, even after Ray has marked it dead)."""
    from ray.util.state import list_actors

    for actor in list_actors(address=address, filters=[("class_name", "=", "EncoderActor")], detail=True):
        if actor.state == "ALIVE":
            return False
        try:
            os.kill(actor.pid, 0)
            return False  # marked dead, but its process still runs
        except (ProcessLookupError, TypeError):
            pass
    return True


@pytest.mark.slow
def test_sigkill_of_an_encoder_actor_mid_shard_loses_and_duplicates_nothing(ray_head, tmp_path):
    data = write_shards(tmp_path / "shards", 30, shards=2, frames=40)
    out = tmp_path / "out"
    job = start_cli(ray_head, "--input", data.spec, "--output", str(out), *SMALL_CLIPS, "--resolution", "64x64",
                    "--clips", "all", "--batch-size", "1", "--decode-workers", "1", log=tmp_path / "job.log")
    try:
        _, progress = _wait_for(lambda: _encoder_actor(ray_head.address), 120, "the encoder to be mid-shard")
        os.kill(progress.pid, signal.SIGKILL)
        assert job.wait(timeout=240) == 0, (tmp_path / "job.log").read_text()
    finally:
        job.kill()
    keys = ids(read_rows(out))
    expected = {(clip.info.key, clip.info.clip_index) for shard in sorted(data.folder.glob("*.tar"))
                for clip in read_shard(str(shard), ReadConfig(num_frames=5, resolution=(64, 64), clips="all"))}
    assert len(expected) == 2 * 30 * 8  # 40 frames: 8 non-overlapping 5-frame clips per video
    assert len(keys) == len(set(keys)) and set(keys) == expected
    killed = json.loads((out / "_committed" / f"{progress.shard}.json").read_text())
    assert killed["attempt"] == 2 and killed["actor"]["pid"] != progress.pid  # re-queued, to a new actor


@pytest.mark.slow
def test_killed_driver_rerun_encodes_only_the_rest_and_matches_a_clean_run(ray_head, tmp_path):
    data = write_shards(tmp_path / "shards", 6, shards=6)
    args = ["--input", data.spec, *SMALL_CLIPS]
    interrupted, clean = tmp_path / "interrupted", tmp_path / "clean"
    job = start_cli(ray_head, *args, "--output", str(interrupted), log=tmp_path / "first.log")
    try:
        _wait_for(lambda: len(list((interrupted / "_committed").glob("*.json"))) >= 2, 180, "two committed shards")
        job.send_signal(signal.SIGKILL)
        job.wait(timeout=30)
    finally:
        job.kill()
    _wait_for(lambda: _no_encoder_actor(ray_head.address), 60, "the killed driver's actors to end", interval=0.5)
    first = {p.stem for p in (interrupted / "_committed").glob("*.json")}
    assert 2 <= len(first) < 6, "the driver must die mid-job for this test to mean anything"
    run_cli(ray_head, *args, "--output", str(interrupted))
    assert shard_counts(interrupted) == (6, len(first), 6 - len(first))
    run_ids = {json.loads(p.read_text())["run_id"] for p in (interrupted / "_committed").glob("*.json")}
    assert len(run_ids) == 2
    run_cli(ray_head, *args, "--output", str(clean))
    for kind in ("latents", "errors"):
        assert read_rows(interrupted, kind) == read_rows(clean, kind), kind
    assert not list(interrupted.rglob("*.tmp-*"))


@pytest.mark.slow
def test_shards_that_keep_failing_are_given_up_recorded_and_retried_by_a_rerun(ray_head, tmp_path):
    data = write_shards(tmp_path / "shards", 2, shards=3)
    listing = tmp_path / "shards.txt"  # a list file: its http entry is taken as named (http lists no folder)
    unreachable = "http://127.0.0.1:9/part-000002.tar"  # refused: retried, then given up
    listing.write_text("\n".join([*data.urls[:2], unreachable]) + "\n")
    out = tmp_path / "out"
    (out / "errors" / "part-000001.parquet").mkdir(parents=True)  # that shard's output cannot be written
    result = run_cli(ray_head, "--input", str(listing), "--output", str(out), *SMALL_CLIPS, "--max-shard-attempts",
                     "2", check=False)
    assert result.returncode == 3, result.stdout + result.stderr
    given_up = json.loads((out / "_given_up" / "part-000001.json").read_text())
    assert given_up["attempts"] == 2 and given_up["last_error"]
    unreachable_record = json.loads((out / "_given_up" / "part-000002.json").read_text())
    assert unreachable_record["attempts"] == 2 and unreachable_record["url"] == unreachable
    summary = read_summary(out)
    assert shards_by_state(summary) == (3, 1, 2, 0)
    assert sorted(summary["this_run"]["given_up"]) == ["part-000001", "part-000002"]  # in the order they gave out
    (out / "errors" / "part-000001.parquet").rmdir()  # fixed: a re-run retries only these shards
    listing.write_text("\n".join(data.urls) + "\n")
    run_cli(ray_head, "--input", str(listing), "--output", str(out), *SMALL_CLIPS)
    assert shard_counts(out) == (3, 1, 2)
    assert not list((out / "_given_up").glob("*.json"))
    assert len(read_rows(out)) == 6


def _blocking_dataset(tmp_path, shards: int):
    """``shards`` shards whose last one is a FIFO: a job reading it blocks until the test writes it."""
    data = write_shards(tmp_path / "shards", 2, shards=shards)
    last = data.folder / f"part-{shards - 1:06d}.tar"
    payload = last.read_bytes()
    last.unlink()
    os.mkfifo(last)
    return data, last, payload


def _stuck_job(ray_head, tmp_path, shards: int, grace: int):
    """A job on ``shards`` shards (``--grace-seconds grace``), started once all but its last, blocked one
    are committed; returns (job, its args, the output, the FIFO, what unblocks it)."""
    data, fifo, payload = _blocking_dataset(tmp_path, shards=shards)
    out = tmp_path / "out"
    args = ["--input", data.spec, "--output", str(out), *SMALL_CLIPS, "--num-actors", "1", "--grace-seconds",
            str(grace)]
    job = start_cli(ray_head, *args, log=tmp_path / "job.log")
    try:
        _wait_for(lambda: len(list((out / "_committed").glob("*.json"))) == shards - 1, 180,
                  f"{shards - 1} committed shard(s)")
    except BaseException:
        job.kill()
        raise
    return job, args, out, fifo, payload


@pytest.mark.slow
def test_sigterm_abandons_a_stuck_shard_after_the_grace_period_writes_the_summary_and_exits_143(ray_head, tmp_path):
    job, args, out, fifo, payload = _stuck_job(ray_head, tmp_path, shards=4, grace=2)
    try:
        time.sleep(0.5)
        job.send_signal(signal.SIGTERM)
        began = time.monotonic()
        assert job.wait(timeout=60) == 143, (tmp_path / "job.log").read_text()
        assert time.monotonic() - began < 30
    finally:
        job.kill()
    log = (tmp_path / "job.log").read_text()
    assert log.rstrip().splitlines()[-1] == ("stopped by SIGTERM: 3 of 4 shards committed (3 in this run, 1 "
                                             "abandoned mid-shard), 1 not; re-run the same command to encode the rest")
    assert "Traceback" not in log and "PC: @" not in log
    # the progress during the grace period says what is left of the running shards, not an ETA of the job
    assert "stopping: 1 running shard(s) may still commit" in log and "s of the grace period left" in log
    summary = read_summary(out)
    assert summary["this_run"]["stopped_by"] == "SIGTERM" and summary["this_run"]["abandoned"] == ["part-000003"]
    assert shards_by_state(summary) == (4, 3, 0, 1)
    assert not list((out / "_lease").glob("*.json"))  # released: a re-run need not wait for it to lapse
    fifo.unlink()
    fifo.write_bytes(payload)
    run_cli(ray_head, *args)
    assert shard_counts(out) == (4, 3, 1) and len(read_rows(out)) == 8


def test_sigint_lets_the_running_shard_commit_within_the_grace_period_and_exits_130(ray_head, tmp_path):
    job, _, out, fifo, payload = _stuck_job(ray_head, tmp_path, shards=2, grace=120)
    try:
        time.sleep(0.5)
        job.send_signal(signal.SIGINT)  # Ctrl-C
        _wait_for(lambda: "SIGINT received" in (tmp_path / "job.log").read_text(), 30, "the job to notice")
        with open(fifo, "wb") as file:  # the running shard can now finish, within the grace period
            file.write(payload)
        assert job.wait(timeout=120) == 130, (tmp_path / "job.log").read_text()
    finally:
        job.kill()
    log = (tmp_path / "job.log").read_text()
    assert "KeyboardInterrupt" not in log and "Traceback" not in log
    summary = read_summary(out)
    assert summary["this_run"]["stopped_by"] == "SIGINT" and summary["this_run"]["abandoned"] == []
    assert shards_by_state(summary) == (2, 2, 0, 0)
    assert summary["this_run"]["shards_encoded"] == 2  # the running shard committed in the grace period
    assert len(read_rows(out)) == 4


@pytest.mark.slow
def test_a_second_signal_abandons_the_running_shard_at_once(ray_head, tmp_path):
    job, _, out, _, _ = _stuck_job(ray_head, tmp_path, shards=2, grace=600)
    try:
        job.send_signal(signal.SIGTERM)
        _wait_for(lambda: "get 600 s to commit" in (tmp_path / "job.log").read_text(), 30, "the job to notice")
        job.send_signal(signal.SIGTERM)
        assert job.wait(timeout=60) == 143, (tmp_path / "job.log").read_text()
    finally:
        job.kill()
    assert "Traceback" not in (tmp_path / "job.log").read_text()
    summary = read_summary(out)
    assert summary["this_run"]["stopped_by"] == "SIGTERM" and summary["this_run"]["abandoned"] == ["part-000001"]
    assert (summary["shards"]["committed"], summary["shards"]["total"]) == (1, 2)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB tmpfs: full once the test fills it."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.mark.slow
def test_a_full_disk_is_reported_not_a_crash_and_the_exit_status_survives(ray_head, tmp_path, tiny_disk):
    data, fifo, payload = _blocking_dataset(tmp_path, shards=1)
    out = tiny_disk / "out"
    args = ["--input", data.spec, "--output", str(out), *SMALL_CLIPS, "--max-shard-attempts", "1"]
    job = start_cli(ray_head, *args, log=tmp_path / "job.log")
    try:
        _wait_for(lambda: (out / "_job.json").exists(), 180, "the job to start encoding")
        filler = subprocess.run(["dd", "if=/dev/zero", f"of={tiny_disk / 'filler'}", "bs=4k"], capture_output=True)
        assert b"No space left" in filler.stderr
        with open(fifo, "wb") as file:
            file.write(payload)
        assert job.wait(timeout=180) == 3, (tmp_path / "job.log").read_text()
    finally:
        job.kill()
    log = (tmp_path / "job.log").read_text()
    assert "shard part-000000 given up after 1 attempts: OSError: [Errno 28] No space left on device" in log
    assert f"warning: could not record the given-up shard in {out}/_given_up/part-000000.json: OSError: [Errno 28]" in log
    assert f"warning: could not write {out}/_summary.json: OSError: [Errno 28]" in log
    assert "0/1 committed, 1 given up, 0 pending" in log and "Traceback" not in log
    assert not list((out / "_committed").glob("*")) and not list(out.rglob("*.tmp-*"))
    (tiny_disk / "filler").unlink()
    fifo.unlink()
    fifo.write_bytes(payload)
    run_cli(ray_head, *args)
    assert shard_counts(out) == (1, 0, 1) and len(read_rows(out)) == 2


def test_a_shard_given_up_in_this_run_counts_as_given_up_without_its_marker(tmp_path):
    """Its _given_up marker could not be written (disk full): the run's own list still says so."""
    from pipeline.job.summary import format_summary
    from pipeline.output.reader import read_job_output
    from pipeline.output.summary import ShardCounts, summarize
    from pipeline.output.layout import OutputLayout
    from tests.support.encoded_outputs import published_output

    output = published_output(tmp_path / "out", shards=3, uncommitted=(1,))  # no commit, no _given_up marker
    layout = OutputLayout(str(output.out))
    names = ["part-000000", "part-000001", "part-000002", "part-000003"]
    state = read_job_output(layout).state
    summary = summarize(layout.url, state, ["part-000001"], names)  # this run's list: no marker was written
    assert summary.shards == ShardCounts(committed=2, given_up=1, pending=1, total=4)
    assert summary.given_up == ["part-000001"]
    assert "2/4 committed, 1 given up, 1 pending" in format_summary(summary)
    # an earlier run's marker and this run's list together, each shard once
    (output.out / "_given_up").mkdir()
    (output.out / "_given_up" / "part-000003.json").write_text("{}")
    again = summarize(layout.url, state, [*layout.given_up_shards(), "part-000001"], names)
    assert again.given_up == ["part-000001", "part-000003"] and again.shards.pending == 0


@pytest.mark.slow
def test_a_signal_while_a_finished_job_shuts_down_keeps_the_runs_status(ray_head, dataset, tmp_path):
    """Ctrl-C as the job leaves its own local Ray runtime (after the summary): the run's status, and one line."""
    log = tmp_path / "job.log"
    job = start_cli(ray_head, "--input", dataset.spec, "--output", str(tmp_path / "out"), *SMALL_CLIPS,
                    "--ray-address", "local", log=log)
    try:
        _wait_for(lambda: "latent std" in log.read_text(), 180, "the summary")
        job.send_signal(signal.SIGINT)
        status = job.wait(timeout=60)
    finally:
        job.kill()
    text = log.read_text()
    assert "Traceback" not in text and "KeyboardInterrupt" not in text
    # leaving a local runtime takes a second or more: the signal comes while it does
    assert status == 0 and "SIGINT received after the run ended; exit status 0" in text, text
    assert shards_by_state(read_summary(tmp_path / "out")) == (3, 3, 0, 0)
