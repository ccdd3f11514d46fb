"""Which side limited a run, and where its decoding ran: the encoder waiting for clips, or decode workers
waiting for the encoder.

Two shares say it: of the encoder's time on its shards, the share spent waiting for decoded clips; of
the decode workers' time over the same span, the share not spent decoding (idle, or held back because
the encoder was behind). A one-line hint says what to change, and on which nodes the workers ran.
"""

from __future__ import annotations

from ..output.records import Balance, CommitRecord

# An encoder waiting more than this share of its time is starved by decoding.
WAITING = 0.25
# Decode workers idle more than this share of the time could feed a faster encoder.
IDLE = 0.25


def balance(encoder_seconds: float, wait_seconds: float, decode_seconds: float, workers: int,
            nodes: dict[str, int] | None = None, unplaced: int = 0) -> Balance:
    """The limiting side from one shard's (or a run's summed) timings; ``nodes``: decode workers up per node
    id, ``unplaced``: workers that found no CPU."""
    nodes = nodes or {}
    waited = min(1.0, wait_seconds / encoder_seconds) if encoder_seconds > 0 else 0.0
    capacity = workers * encoder_seconds
    idle = min(1.0, max(0.0, 1.0 - decode_seconds / capacity)) if capacity > 0 else 0.0
    if waited >= WAITING and idle < IDLE:
        limit = "decode"
        hint = (f"decode-bound: the encoder waited {waited:.0%} of the time while {workers} decode worker(s) were "
                f"busy {1 - idle:.0%}; add CPU nodes (decode workers run wherever the cluster has CPUs), or lower "
                "the source size or resolution")
    elif waited >= WAITING:
        limit = "input"
        hint = (f"input-bound: the encoder waited {waited:.0%} of the time and the decode workers were idle "
                f"{idle:.0%}; samples do not reach the workers fast enough: reading the shards (storage), or the "
                "per-sample cost of handing tiny videos to a worker")
    elif idle >= IDLE:
        limit = "encode"
        hint = (f"encode-bound: the encoder waited only {waited:.0%} of the time; {workers} decode worker(s) were idle "
                f"{idle:.0%}, so fewer CPUs per GPU would do, or a faster encoder (bf16, bigger batches) pays off")
    else:
        limit = "balanced"
        hint = (f"balanced: the encoder waited {waited:.0%} of the time, {workers} decode worker(s) idle {idle:.0%}; "
                "both sides are nearly saturated")
    where = ", ".join(f"{count} on {node[:8]}" for node, count in sorted(nodes.items()))
    hint += f". Decoding ran on {len(nodes)} node(s): {where}" if nodes else ""
    hint += f"; {unplaced} decode worker(s) found no CPU: add CPU nodes" if unplaced else ""
    return Balance(round(waited, 3), round(idle, 3), workers, nodes, unplaced, limit, hint)


def run_balance(records: list[CommitRecord]) -> Balance | None:
    """The balance over several commit records (shares weighted by time; per node, the most workers a
    shard saw there), None if they carry no timings."""
    encoder = wait = decode = capacity = 0.0
    nodes: dict[str, int] = {}
    unplaced = 0
    for record in records:
        timings, shard = record.timings, record.balance
        if shard is None or not timings.encoder_seconds or not shard.decode_workers:
            continue
        encoder += timings.encoder_seconds
        wait += timings.decode_wait_seconds
        decode += timings.decode_seconds
        capacity += shard.decode_workers * timings.encoder_seconds
        for node, count in shard.decode_nodes.items():
            nodes[node] = max(nodes.get(node, 0), count)
        unplaced = max(unplaced, shard.unplaced_workers)
    if encoder <= 0:
        return None
    workers = max(1, round(capacity / encoder))
    return balance(encoder, wait, decode * workers * encoder / capacity if capacity else 0.0, workers, nodes,
                   unplaced)
