"""Which side limited a shard or a run, from its timings: the thresholds, and where decoding ran."""

from __future__ import annotations

from pipeline.job.balance import IDLE, WAITING, balance, run_balance
from pipeline.output.records import Balance, CommitRecord, ShardTimings


def test_the_limiting_side_follows_the_two_shares_and_their_thresholds():
    # 10 s of encoder time and 2 workers: 20 s of worker capacity
    assert balance(10, 10 * WAITING, 20 * (1 - IDLE) + 0.01, 2).limit == "decode"
    assert balance(10, 10 * WAITING, 20 * (1 - IDLE), 2).limit == "input"
    assert balance(10, 10 * WAITING - 0.01, 20 * (1 - IDLE), 2).limit == "encode"
    assert balance(10, 10 * WAITING - 0.01, 20 * (1 - IDLE) + 0.01, 2).limit == "balanced"
    shares = balance(10, 5, 5, 2)
    assert (shares.encoder_waiting_share, shares.decode_idle_share, shares.decode_workers) == (0.5, 0.75, 2)


def test_the_hint_says_where_decoding_ran_and_what_to_add():
    result = balance(10, 9, 19, 4, nodes={"a" * 56: 1, "b" * 56: 3}, unplaced=2)
    assert result.decode_nodes == {"a" * 56: 1, "b" * 56: 3} and result.unplaced_workers == 2
    assert "add CPU nodes" in result.hint and "1 on aaaaaaaa, 3 on bbbbbbbb" in result.hint


def test_a_run_weighs_its_shards_by_time_and_counts_the_most_workers_seen_per_node():
    def record(encoder: float, wait: float, decode: float, nodes: dict[str, int]) -> CommitRecord:
        return CommitRecord("s", timings=ShardTimings(decode_wait_seconds=wait, decode_seconds=decode,
                                                      encoder_seconds=encoder),
                            balance=Balance(0, 0, 2, nodes, 0, "balanced", ""))

    records = [record(10, 1, 10, {"n1": 1, "n2": 1}), record(30, 3, 30, {"n1": 2}),
               CommitRecord("t")]  # a record without timings counts for nothing
    run = run_balance(records)
    assert run.encoder_waiting_share == 0.1 and run.decode_idle_share == 0.5 and run.decode_workers == 2
    assert run.decode_nodes == {"n1": 2, "n2": 1}
    assert run_balance([CommitRecord("t")]) is None
