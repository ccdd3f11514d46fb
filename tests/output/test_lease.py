"""One owner per output: the exclusive create, the lease built on it, on local disk and on S3 (moto)."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest

from pipeline.output.layout import OutputLayout
from pipeline.output.lease import Lease, LeaseLost, OutputBusy
from pipeline.output.manifest import Manifest, ModelIdentity, OutputConflict, OutputIdentity
from pipeline.output.sink import OutputSink
from pipeline.output.storage import create_exclusively


@pytest.fixture(params=["local", "s3"])
def layout(request, tmp_path) -> OutputLayout:
    if request.param == "local":
        return OutputLayout(str(tmp_path / "out"))
    s3 = request.getfixturevalue("local_s3")
    bucket = f"lease-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(bucket)
    return OutputLayout(f"s3://{bucket}/out", s3.storage_options)


def test_of_racing_creators_exactly_one_wins_and_the_file_is_whole(layout):
    path = f"{layout.root}/_job.json"
    barrier = threading.Barrier(8)
    results: list[bool] = []

    def create(i: int) -> None:
        barrier.wait()
        results.append(create_exclusively(layout.fs, path, json.dumps({"writer": i, "pad": "x" * 20000}).encode()))

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    layout.fs.invalidate_cache()
    assert json.loads(layout.fs.cat_file(path))["pad"] == "x" * 20000
    if layout.fs.protocol == "file" or "file" in layout.fs.protocol:
        assert [p.rsplit("/", 1)[-1] for p in layout.fs.ls(layout.root, detail=False)] == ["_job.json"]


def test_a_second_job_is_refused_naming_the_holder_until_the_first_releases(layout):
    first = Lease(layout, "aaaa1111", seconds=30, log=lambda line: None)
    first.acquire()
    second = Lease(layout, "bbbb2222", seconds=30, log=lambda line: None)
    with pytest.raises(OutputBusy, match=r"is in use by another job: run aaaa1111 \(pid \d+ on .*last heartbeat 0 s ago"):
        second.acquire()
    first.renew()
    first.release()
    second.acquire()
    assert [h.record.run_id for h in second.holders()] == ["bbbb2222"]
    second.release()
    assert second.holders() == []


def test_a_lapsed_lease_is_taken_over_and_its_old_holder_finds_out(layout):
    lines: list[str] = []
    stale = Lease(layout, "dead0000", seconds=0.5, log=lines.append)
    stale.acquire()  # and never renewed: its job was killed
    time.sleep(0.7)
    taker = Lease(layout, "live1111", seconds=30, log=lines.append)
    taker.acquire()
    assert any("took over" in line and "run dead0000" in line and "lapsed" in line for line in lines)
    assert [(h.generation, h.record.run_id) for h in taker.holders()] == [(2, "live1111")]
    with pytest.raises(LeaseLost, match="taken over by run live1111"):
        stale.renew()
    stale.release()  # must not remove the taker's lease
    assert [h.record.run_id for h in taker.holders()] == ["live1111"]
    taker.release()


def test_wait_returns_once_the_holder_releases(layout):
    holder = Lease(layout, "hold0000", seconds=30, log=lambda line: None)
    holder.acquire()
    lines: list[str] = []
    waiter = Lease(layout, "wait1111", seconds=30, log=lines.append)
    timer = threading.Timer(1.0, holder.release)
    timer.start()
    began = time.monotonic()
    waiter.acquire(wait=True, poll=0.2)
    assert 0.9 < time.monotonic() - began < 20
    assert lines and "waiting for it to finish" in lines[0] and "run hold0000" in lines[0]
    waiter.release()


def test_the_heartbeat_keeps_a_short_lease_alive(layout):
    holder = Lease(layout, "beat0000", seconds=0.6, log=lambda line: None)
    holder.acquire()
    holder.start_heartbeat()
    time.sleep(1.5)
    with pytest.raises(OutputBusy):
        Lease(layout, "late1111", seconds=30, log=lambda line: None).acquire()
    holder.release()
    assert not holder.lost.is_set()


def test_job_manifest_is_created_once_and_compared_after(layout):
    sink = OutputSink(layout.url, layout.storage_options)
    identity = OutputIdentity({"num_frames": 5}, ModelIdentity(weights_sha256="w"))
    with sink.hold("run11111", 60, log=lambda line: None):
        assert sink.begin(Manifest(identity, {})) == "created"
        assert sink.begin(Manifest(identity, {})) == "resumed"
        with pytest.raises(OutputConflict, match="num_frames: 5 then, 9 now"):
            sink.begin(Manifest(OutputIdentity({"num_frames": 9}, identity.model), {}))


def test_a_killed_holder_on_this_machine_is_not_waited_for(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from pipeline.output.layout import OutputLayout\n"
        "from pipeline.output.lease import Lease\n"
        f"Lease(OutputLayout({str(out)!r}), 'kill0000', seconds=600).acquire()\n"
        "print('held', flush=True)\n"
        "time.sleep(600)\n")], stdout=subprocess.PIPE, text=True, cwd=str(__import__("pathlib").Path(__file__).parents[2]))
    try:
        assert holder.stdout.readline().strip() == "held"
        layout = OutputLayout(str(out))
        with pytest.raises(OutputBusy, match="run kill0000"):
            Lease(layout, "next1111", seconds=30, log=lambda line: None).acquire()
        holder.kill()
        holder.wait(timeout=30)
        lines: list[str] = []
        Lease(layout, "next1111", seconds=30, log=lines.append).acquire()  # at once, not after 600 s
        assert any("took over" in line and "its process is gone" in line for line in lines)
    finally:
        holder.kill()
