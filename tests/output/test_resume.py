"""Planning a resume and folding run files, on values: what is left, what is stale, which commit
records must be read. (How fast it is at 10^4-10^6 shards is measured in bench/scale.py.)"""

from __future__ import annotations

import os

from pipeline.output import index as index_module
from pipeline.output import sink as sink_module
from pipeline.output.index import RunIndex, fold
from pipeline.output.manifest import Manifest, ModelIdentity, OutputIdentity
from pipeline.output.quality import CanaryResults, CheckedClip
from pipeline.output.records import Balance, CommitRecord, RunRecord, ShardTimings, Totals
from pipeline.output.resume import duplicate_names, plan_resume
from pipeline.output.sink import OutputSink
from pipeline.output.sources import source_token, source_tokens, token_of
from pipeline.output.stats import LatentStats


def _record(name: str, rows: int, source: str | None = "t") -> CommitRecord:
    return CommitRecord(name, url=f"/in/{name}.tar", rows=rows, errors=1, errors_by_type={"X": 1},
                        bytes={"latents": 10 * rows, "errors": 5}, stats=LatentStats(rows, [float(rows)], [1.0]),
                        source=source)


def test_duplicate_names_are_found_once_each():
    assert duplicate_names(["a", "b", "a", "c", "b", "a"]) == ["a", "b"]
    assert duplicate_names([f"n{i}" for i in range(1000)]) == []


def test_resume_encodes_new_and_changed_shards_and_keeps_the_rest():
    urls = [f"/in/s{i}.tar" for i in range(5)]
    names = [f"s{i}" for i in range(5)]
    committed = {"s0": (3, "100:1"), "s1": (3, "100:1"), "s2": (3, None), "gone": (2, "1:1")}
    tokens = {"/in/s0.tar": "100:1", "/in/s1.tar": "101:2", "/in/s2.tar": "100:9", "/in/s3.tar": "5:5"}
    plan = plan_resume(urls, names, committed, tokens)
    assert plan.todo == ["/in/s1.tar", "/in/s3.tar", "/in/s4.tar"]  # s1 changed; s3, s4 are new
    assert plan.stale == ["s1"]
    assert plan.committed == ["s0", "s2"]  # s0 unchanged; s2 has no recorded source (an earlier version's) and is kept
    assert plan.not_in_input == 1


def test_fold_uses_run_totals_and_reads_only_what_no_run_file_settles():
    first = RunIndex("r1", 1.0)
    for name in ("a", "b", "c"):
        first.add(_record(name, 2), "t")
    second = RunIndex("r2", 2.0)
    second.add(_record("d", 4), "t")
    killed = RunIndex("r3", 3.0, part=1)  # a run killed after its first update, which named e
    killed.add(_record("e", 7), "t")
    legacy = RunIndex("r0", 0.5, complete=False)  # an older version's file of a run that never ended
    stored = {name: _record(name, rows) for name, rows in (("a", 2), ("b", 2), ("c", 2), ("d", 4), ("e", 7),
                                                            ("f", 5), ("x", 1))}
    asked = []

    def read(names):
        asked.append(list(names))
        return (stored[name] for name in names)

    # f was committed by the killed run after its last update; x by a run that left no file
    state = fold(["a", "b", "c", "d", "e", "f", "x"], [killed, legacy, first, second], read, now=4.0)
    assert asked == [["f", "x"]]
    assert state.totals.shards == 7 and state.totals.rows == 2 * 3 + 4 + 7 + 5 + 1
    assert state.totals.errors_by_type == {"X": 7} and state.totals.bytes["latents"] == 230
    assert sorted(state.shards) == ["a", "b", "c", "d", "e", "f", "x"] and state.shards["e"] == (7, "t")
    # what the killed run left and what was read, written down once; its files (and the legacy one) go
    assert sorted(state.adopted.shards) == ["e", "f", "x"] and state.adopted.totals.rows == 13
    assert sorted(state.replaced) == sorted([killed.file_name, legacy.file_name])

    # b re-encoded by a later run, c's marker removed: r1's totals no longer hold, a's record is read
    third = RunIndex("r4", 5.0)
    third.add(_record("b", 9), "u")
    asked.clear()
    state = fold(["a", "b", "d"], [first, second, third], read, now=6.0)
    assert asked == [["a"]] and state.totals.rows == 2 + 9 + 4 and state.shards["b"] == (9, "u")
    assert state.replaced == []


def test_a_run_file_written_when_its_run_ends_wins_over_its_updates():
    """A run that ended but could not remove its update files: its whole file counts, its updates add nothing."""
    whole, update = RunIndex("r1", 1.0), RunIndex("r1", 1.0, part=1)
    for index in (whole, update):
        index.add(_record("a", 2), "t")
    whole.add(_record("b", 3), "t")
    state = fold(["a", "b"], [update, whole], lambda names: iter(()), now=2.0)
    assert state.totals.rows == 5 and state.totals.shards == 2 and state.replaced == [update.file_name]


def test_records_round_trip_through_their_dicts():
    record = _record("s", 3)
    record.canary = CanaryResults(2, 4, 2, 60.0, 29.0, [CheckedClip("k", 0, 29.0)], 0.1)
    record.timings = ShardTimings(encode_seconds=1.5, decode_seconds=0.25)
    record.balance = Balance(0.5, 0.25, 2, {"node": 2}, 0, "decode", "decode-bound")
    assert CommitRecord.from_dict(record.to_dict()) == record
    assert CommitRecord.from_dict({**record.to_dict(), "added_later": 1}) == record  # newer fields are ignored
    run = RunRecord("r", seconds=1.5, stale=["s"], balance=record.balance)
    assert RunRecord.from_dict(run.to_dict()) == run
    totals = Totals()
    totals.add(record)
    assert Totals.from_dict(totals.to_dict()) == totals and totals.canary.worst[0].shard == "s"
    index = RunIndex("r", 1.0)
    index.add(record, "t")
    assert RunIndex.from_dict(index.to_dict()) == index
    # a commit record of an earlier version, with fields since renamed or added missing
    old = CommitRecord.from_dict({"shard": "s", "rows": 3, "timings": {"encode_seconds": 2.0, "gone": 1.0}})
    assert old.rows == 3 and old.timings.encode_seconds == 2.0 and old.bytes == {"latents": 0, "errors": 0}


def test_source_tokens_come_from_one_listing_and_change_with_the_content(tmp_path):
    for name in ("a.tar", "b.tar"):
        (tmp_path / name).write_bytes(b"x" * 10)
    urls = [str(tmp_path / "a.tar"), str(tmp_path / "b.tar"), str(tmp_path / "missing.tar")]
    tokens = source_tokens(urls)
    assert tokens[urls[0]] == source_token(urls[0]) and tokens[urls[2]] is None
    os.utime(tmp_path / "a.tar", ns=(0, 10**9))
    assert source_token(urls[0]) != tokens[urls[0]]
    assert token_of({"size": 3, "ETag": '"abc"', "LastModified": "then"}) == "3:abc"  # S3's listing entry


def test_a_run_updates_its_file_as_it_goes_and_the_next_one_reads_only_what_came_after(tmp_path, monkeypatch):
    """Killed after 7 commits with an update every 3: the next run reads the one commit record since the last
    update; a run that ends leaves one file."""
    monkeypatch.setattr(index_module, "UPDATE_COMMITS", 3)
    monkeypatch.setattr(sink_module, "UPDATE_COMMITS", 3)
    out = tmp_path / "out"
    identity = OutputIdentity({"num_frames": 5}, ModelIdentity(weights_sha256="w"))
    names = [f"s{i}" for i in range(10)]
    urls = [f"/nowhere/{name}.tar" for name in names]
    sink = OutputSink(str(out))
    with sink.hold("killed01", 60, log=lambda line: None):
        assert sink.start(urls, names, identity).todo == urls
        sink.begin(Manifest(identity, {}))
        for name, url in zip(names[:7], urls):
            sink.committed(sink.publish(CommitRecord(name, url=url, stats=LatentStats()), [], [], {}))
        # killed here: no finish (the lease is left to lapse)
        sink._run.lease.release()
    runs = sorted(path.name for path in (out / "_runs").iterdir())
    assert len(runs) == 2 and all(".00000" in name for name in runs)  # updates 1 and 2: six commits

    read = []
    layout = sink.layout
    original = layout.read_commit_records
    monkeypatch.setattr(type(layout), "read_commit_records",
                        lambda self, names=None: (read.extend(names or []), original(names))[1])
    sink = OutputSink(str(out))
    with sink.hold("next0001", 60, log=lambda line: None):
        left = sink.start(urls, names, identity)
        assert read == ["s6"] and left.todo == urls[7:] and left.committed == names[:7]
        sink.begin(Manifest(identity, {}))
        for name, url in zip(names[7:], urls[7:]):
            sink.committed(sink.publish(CommitRecord(name, url=url, stats=LatentStats()), [], [], {}))
        summary = sink.finish(seconds=1.0)
    assert summary.shards.committed == 10 and summary.this_run.shards_encoded == 3
    assert summary.this_run.shards_skipped == 7
    runs = sorted(path.name for path in (out / "_runs").iterdir())
    assert len(runs) == 2 and not any(".00000" in name for name in runs)  # the adopted file and this run's
    read.clear()
    state = OutputSink(str(out)).state()
    assert read == [] and len(state.shards) == 10 and state.totals.shards == 10


def test_a_version_2_output_resumes_and_one_of_a_newer_version_is_refused(tmp_path):
    import json

    import pytest

    from pipeline.output.manifest import OutputConflict

    (tmp_path / "out").mkdir()
    manifest = tmp_path / "out" / "_job.json"
    settings = {"num_frames": 5, "input_shards": {"count": 4, "sha256": "0" * 64}}  # version 2 kept the shard list
    manifest.write_text(json.dumps({"version": 2, "output_settings": settings, "model": {}}))
    sink = OutputSink(str(tmp_path / "out"))

    def identity(frames: int) -> OutputIdentity:
        return OutputIdentity({"num_frames": frames}, ModelIdentity())

    assert sink.check(identity(5)) == "resumes"
    with pytest.raises(OutputConflict, match="num_frames: 5 then, 9 now"):
        sink.check(identity(9))
    manifest.write_text(json.dumps({"version": 99, "output_settings": {"num_frames": 5}, "model": {}}))
    with pytest.raises(OutputConflict, match="written by a newer version of this job"):
        sink.check(identity(5))
