"""One owner per output, end to end: two jobs on one output never both encode it."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from pipeline.output.layout import OutputLayout
from pipeline.output.lease import Lease
from tests.support.jobs import SMALL_CLIPS, run_cli, start_cli
from tests.support.outputs import read_rows, read_summary, shard_counts
from tests.support.shards import write_shards


def _wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_two_jobs_started_together_one_runs_the_other_is_refused_naming_it(ray_head, tmp_path):
    data = write_shards(tmp_path / "shards", 3, shards=3)
    last = data.folder / "part-000002.tar"
    payload = last.read_bytes()
    last.unlink()
    os.mkfifo(last)  # the winner cannot finish (and give the output back) before the loser has tried
    out = tmp_path / "out"
    args = ["--input", data.spec, "--output", str(out), *SMALL_CLIPS, "--num-actors", "1"]
    jobs = [start_cli(ray_head, *args, log=tmp_path / f"job{i}.log") for i in range(2)]
    try:
        _wait_for(lambda: any(job.poll() is not None for job in jobs), 180, "one job to exit")
        loser = next(i for i, job in enumerate(jobs) if job.poll() is not None)
        with open(last, "wb") as fifo:
            fifo.write(payload)
        codes = [job.wait(timeout=240) for job in jobs]
    finally:
        for job in jobs:
            job.kill()
    logs = [(tmp_path / f"job{i}.log").read_text() for i in range(2)]
    winner = 1 - loser
    assert codes[loser] == 1 and codes[winner] == 0, logs
    run_id = read_summary(out)["this_run"]["run_id"]  # the winner's, the one run that wrote the output
    assert f"is in use by another job: run {run_id} (pid" in logs[loser] and "or pass --wait" in logs[loser]
    assert "Traceback" not in logs[loser]
    records = [json.loads(p.read_text()) for p in (out / "_committed").glob("*.json")]
    assert len(records) == 3 and {r["run_id"] for r in records} == {run_id} and {r["attempt"] for r in records} == {1}
    assert not list((out / "_lease").glob("*.json"))  # released
    assert len(read_rows(out)) == 9


@pytest.mark.slow
def test_overwrite_never_deletes_a_held_output_and_wait_resumes_after_it(ray_head, tmp_path):
    data = write_shards(tmp_path / "shards", 2, shards=4)
    last = data.folder / "part-000003.tar"
    payload = last.read_bytes()
    last.unlink()
    os.mkfifo(last)  # the first job blocks reading its last shard until the test writes it
    out = tmp_path / "out"
    args = ["--input", data.spec, "--output", str(out), *SMALL_CLIPS, "--num-actors", "1"]
    first = start_cli(ray_head, *args, log=tmp_path / "first.log")
    waiter = None
    try:
        _wait_for(lambda: len(list((out / "_committed").glob("*.json"))) == 3, 180, "three committed shards")
        overwrite = run_cli(ray_head, *args, "--overwrite", check=False, timeout=120)
        assert overwrite.returncode == 1, overwrite.stdout + overwrite.stderr
        assert "is in use by another job: run" in overwrite.stderr and "Traceback" not in overwrite.stderr
        assert len(list((out / "_committed").glob("*.json"))) == 3 and (out / "_job.json").exists()
        assert first.poll() is None, "the first job must still be running"
        waiter = start_cli(ray_head, *args, "--wait", log=tmp_path / "waiter.log")
        _wait_for(lambda: "waiting for it to finish (--wait)" in (tmp_path / "waiter.log").read_text(), 120,
                  "the second job to wait")
        with open(last, "wb") as fifo:  # let the first job finish
            fifo.write(payload)
        assert first.wait(timeout=240) == 0, (tmp_path / "first.log").read_text()
        assert waiter.wait(timeout=240) == 0, (tmp_path / "waiter.log").read_text()
    finally:
        first.kill()
        if waiter is not None:
            waiter.kill()
    assert shard_counts(out) == (4, 4, 0)  # the waiter's run, after the first one's
    assert "took over" not in (tmp_path / "waiter.log").read_text()  # released, not lapsed
    records = [json.loads(p.read_text()) for p in (out / "_committed").glob("*.json")]
    assert len(records) == 4 and len({r["run_id"] for r in records}) == 1
    assert len(read_rows(out)) == 8


def test_sigterm_while_waiting_for_the_output_exits_143_before_ray(ray_head, dataset, tmp_path):
    out = tmp_path / "out"
    holder = Lease(OutputLayout(str(out)), "hold0000", seconds=600, log=lambda line: None)
    holder.acquire()
    try:
        job = start_cli(ray_head, "--input", dataset.spec, "--output", str(out), *SMALL_CLIPS, "--wait",
                        log=tmp_path / "job.log")
        try:
            _wait_for(lambda: "waiting for it to finish (--wait)" in (tmp_path / "job.log").read_text(), 60,
                      "the job to wait")
            job.send_signal(signal.SIGTERM)
            assert job.wait(timeout=30) == 143
        finally:
            job.kill()
    finally:
        holder.release()
    log = (tmp_path / "job.log").read_text()
    assert "error: stopped while waiting for" in log and "run hold0000" in log and "Traceback" not in log
    assert not (out / "_job.json").exists()


@pytest.mark.slow
def test_a_job_whose_lease_was_taken_over_stops(ray_head, tmp_path):
    data = write_shards(tmp_path / "shards", 2, shards=2)
    fifo = data.folder / "part-000001.tar"
    fifo.unlink()
    os.mkfifo(fifo)  # the job blocks on its second shard
    out = tmp_path / "out"
    job = start_cli(ray_head, "--input", data.spec, "--output", str(out), *SMALL_CLIPS, "--num-actors", "1",
                    "--lease-seconds", "3", log=tmp_path / "job.log")
    try:
        _wait_for(lambda: list((out / "_committed").glob("*.json")), 180, "the first committed shard")
        # What a second job does once this one's lease has lapsed (e.g. this driver stalled for longer
        # than --lease-seconds): it takes the next generation and removes the older files.
        (current,) = (out / "_lease").glob("*.json")
        record = json.loads(current.read_text())
        (out / "_lease" / f"{int(current.stem) + 1:012d}.json").write_text(json.dumps(
            {**record, "run_id": "taker111", "pid": 1, "renewed_at": time.time() + 600}))
        current.unlink()
        assert job.wait(timeout=60) == 1, (tmp_path / "job.log").read_text()
    finally:
        job.kill()
    log = (tmp_path / "job.log").read_text()
    assert "lapsed and it was taken over by run taker111" in log and "its committed shards are kept" in log
    assert "Traceback" not in log
    assert [p.stem for p in (out / "_lease").glob("*.json")] == [f"{int(current.stem) + 1:012d}"]  # left alone
