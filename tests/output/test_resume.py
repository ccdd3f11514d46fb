"""Planning a resume and folding run files, on values: what is left, what is stale, which commit
records must be read. (How fast it is at 10^4-10^6 shards is measured in bench/scale.py.)"""

from __future__ import annotations

import os

from pipeline.output.index import RunIndex, fold
from pipeline.output.records import CommitRecord, RunRecord, Totals
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
    assert plan.skipped == 2  # s0 unchanged; s2 has no recorded source (an earlier version's) and is kept
    assert plan.not_in_input == 1


def test_fold_uses_run_totals_and_reads_only_what_no_finished_run_settles():
    first = RunIndex("r1", 1.0, complete=True)
    for name in ("a", "b", "c"):
        first.add(_record(name, 2), "t")
    second = RunIndex("r2", 2.0, complete=True)
    second.add(_record("d", 4), "t")
    crashed = RunIndex("r3", 3.0, complete=False, planned=["e", "f"])
    stored = {name: _record(name, rows) for name, rows in (("a", 2), ("b", 2), ("c", 2), ("d", 4), ("e", 7),
                                                            ("x", 1))}
    asked = []

    def read(names):
        asked.append(list(names))
        return (stored[name] for name in names)

    # e was committed by the crashed run (f was not); x by a run that left no file
    state = fold(["a", "b", "c", "d", "e", "x"], [crashed, first, second], read, now=4.0)
    assert asked == [["e", "x"]]
    assert state.totals.shards == 6 and state.totals.rows == 2 * 3 + 4 + 7 + 1
    assert state.totals.errors_by_type == {"X": 6} and state.totals.bytes["latents"] == 180
    assert sorted(state.shards) == ["a", "b", "c", "d", "e", "x"] and state.shards["e"] == (7, "t")
    assert sorted(state.adopted.shards) == ["e", "x"] and state.adopted.totals.rows == 8

    # b re-encoded by a later run, c's marker removed: r1's totals no longer hold, a's record is read
    third = RunIndex("r4", 5.0, complete=True)
    third.add(_record("b", 9), "u")
    asked.clear()
    state = fold(["a", "b", "d"], [first, second, third], read, now=6.0)
    assert asked == [["a"]] and state.totals.rows == 2 + 9 + 4 and state.shards["b"] == (9, "u")


def test_records_round_trip_through_their_dicts():
    record = _record("s", 3)
    record.canary = {"every": 2, "seen": 4, "checked": 2, "psnr_sum": 60.0, "psnr_min": 29.0,
                     "worst": [{"key": "k", "clip": 0, "psnr": 29.0}], "seconds": 0.1}
    assert CommitRecord.from_dict(record.to_dict()) == record
    assert CommitRecord.from_dict({**record.to_dict(), "added_later": 1}) == record  # newer fields are ignored
    run = RunRecord("r", seconds=1.5, stale=["s"])
    assert RunRecord.from_dict(run.to_dict()) == run
    totals = Totals()
    totals.add(record)
    assert Totals.from_dict(totals.to_dict()) == totals and totals.canary["worst"][0]["shard"] == "s"
    index = RunIndex("r", 1.0, complete=True)
    index.add(record, "t")
    assert RunIndex.from_dict(index.to_dict()) == index


def test_source_tokens_come_from_one_listing_and_change_with_the_content(tmp_path):
    for name in ("a.tar", "b.tar"):
        (tmp_path / name).write_bytes(b"x" * 10)
    urls = [str(tmp_path / "a.tar"), str(tmp_path / "b.tar"), str(tmp_path / "missing.tar")]
    tokens = source_tokens(urls)
    assert tokens[urls[0]] == source_token(urls[0]) and tokens[urls[2]] is None
    os.utime(tmp_path / "a.tar", ns=(0, 10**9))
    assert source_token(urls[0]) != tokens[urls[0]]
    assert token_of({"size": 3, "ETag": '"abc"', "LastModified": "then"}) == "3:abc"  # S3's listing entry


def test_the_sink_writes_a_run_file_that_the_next_state_uses(tmp_path):
    sink = OutputSink(str(tmp_path / "out"))
    sink.open({}, {"num_frames": 5}, {"weights_sha256": "w"})
    run = sink.begin_run("r1", ["a", "b"])
    published = [sink.publish(CommitRecord(name, url=f"/nowhere/{name}.tar", stats=LatentStats()), [], [], {})
                 for name in ("a", "b")]
    assert sink.state().adopted is not None  # the run has not finished: its records are read
    sink.finish_run(run, published, {"/nowhere/a.tar": "1:1"})
    state = sink.state()
    assert state.adopted is None and state.shards == {"a": (0, "1:1"), "b": (0, None)}
    assert sink.check({"num_frames": 5}) == "resumes"


def test_a_version_2_output_resumes_and_one_of_a_newer_version_is_refused(tmp_path):
    import json

    import pytest

    from pipeline.output.manifest import OutputConflict

    (tmp_path / "out").mkdir()
    manifest = tmp_path / "out" / "_job.json"
    settings = {"num_frames": 5, "input_shards": {"count": 4, "sha256": "0" * 64}}  # version 2 kept the shard list
    manifest.write_text(json.dumps({"version": 2, "output_settings": settings, "model": {}}))
    sink = OutputSink(str(tmp_path / "out"))
    assert sink.check({"num_frames": 5}) == "resumes"
    with pytest.raises(OutputConflict, match="num_frames: 5 then, 9 now"):
        sink.check({"num_frames": 9})
    manifest.write_text(json.dumps({"version": 99, "output_settings": {"num_frames": 5}, "model": {}}))
    with pytest.raises(OutputConflict, match="written by a newer version of this job"):
        sink.check({"num_frames": 5})
