"""One shard, end to end, inside an encoder actor: opened (its decoding starts), encoded in its turn by the
encode loop, published through the output's sink.

``encode_shard`` may be called for the next shards while the current one still runs (the actor takes
``SHARDS_IN_FLIGHT`` shard calls at a time): the next shard is then read and decoded while the current
one's last batches encode, and the current one is published (Parquet, upload, commit marker) on its own
call's thread while the encoder goes on with the next. The encoder waits only for decoded clips, never
for I/O.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from ..encode.shard_loop import ShardLoop, ShardProgress
from ..output.layout import shard_name
from ..output.records import ActorInfo, CommitRecord, Decoding
from ..output.sink import OutputSink
from .balance import balance
from .dataflow import Dataflow
from .encoder_actor import OPENED
from .metrics import JobMetrics

class ShardEncoder:
    def __init__(self, loop: ShardLoop, dataflow: Dataflow, sink: OutputSink, metadata: dict[str, Any], *,
                 run_id: str, actor: ActorInfo, metrics: JobMetrics | None = None) -> None:
        """``dataflow``: the shards' decoding (made before the model loads, so its workers start meanwhile);
        ``metadata``: every Parquet file's key-value metadata."""
        self.loop, self.dataflow, self.sink, self.metadata = loop, dataflow, sink, metadata
        self.run_id, self.actor, self.metrics = run_id, actor, metrics

    def progress(self) -> tuple[ShardProgress | None, int]:
        """The shard being encoded, and the decode workers that hold samples but wait for a CPU."""
        return self.loop.progress(), self.dataflow.pool.waiting_for_cpu()

    def close(self) -> None:
        self.dataflow.close()

    def encode_shard(self, url: str, attempt: int) -> Iterator[str | CommitRecord]:
        """Yields ``OPENED`` once the shard is queued for decoding, then its commit record once published."""
        opened = time.perf_counter()
        feed = self.dataflow.open(url)
        yield OPENED
        with self.dataflow.turn(feed):
            turn, encoding_started_at = time.perf_counter(), time.time()
            encoded = self.loop.encode(shard_name(url), feed)
        # The encoder's turn is over: the next shard encodes while this one is published here.
        timings = encoded.record.timings
        timings.turn_wait_seconds, timings.total_seconds = turn - opened, time.perf_counter() - opened
        record = replace(encoded.record, url=url, attempt=attempt, run_id=self.run_id, actor=self.actor,
                         decoding=Decoding(feed.calls, feed.retried), decode_started_at=feed.decode_started_at,
                         encoding_started_at=encoding_started_at, encoded_at=time.time(),
                         balance=balance(timings.encoder_seconds, timings.decode_wait_seconds, timings.decode_seconds,
                                         **self.dataflow.pool.placed()))
        committed = self.sink.publish(record, encoded.rows, encoded.errors, self.metadata, encoded.text)
        if self.metrics:
            self.metrics.shard_committed(committed, encoded.errors)
        yield committed

