"""The job's live metrics, through ``ray.util.metrics``: the Ray dashboard's Metrics view and any
Prometheus scraping the cluster (each node's ``--metrics-export-port``) show them while it runs.

    wfvae_clips_encoded            clips encoded                                 {output}
    wfvae_samples_failed           samples recorded as error rows                {output, error_type, stage}
    wfvae_shards_committed         shards published with their commit marker    {output}
    wfvae_shards_given_up          shards given up after max attempts            {output}
    wfvae_encoder_wait_seconds     encoder time spent waiting for decoded clips  {output}
    wfvae_encode_seconds           encoder time spent encoding                   {output}
    wfvae_decode_seconds           decode-worker time spent decoding             {output}
    wfvae_quality_psnr_db          lowest canary PSNR of the last shard (gauge)  {output}

Counters only grow; rates come from the scraper (``rate(ray_wfvae_clips_encoded_total[1m])``;
Ray prefixes ``ray_``, and Prometheus counters end in ``_total``). The ``output`` tag (the output
URL) keeps two jobs on one cluster apart. Metric objects belong to the process that records them:
each encoder actor and the driver make one ``JobMetrics``. Decode seconds are the decode workers'
own time, which reaches the encoder with each sample and the commit record with the shard.
"""

from __future__ import annotations

from collections import Counter as Tally
from typing import Any

from ray.util.metrics import Counter, Gauge

from ..output.records import CommitRecord

PREFIX = "wfvae_"


class JobMetrics:
    """The encoder actors' and the driver's metrics of one job (one ``output``).

    A shard's figures are recorded when it is committed, from its commit record: the counters then
    hold committed work only, and an attempt that failed and was retried is not counted twice. A
    shard takes seconds to minutes, so the figures move while the job runs."""

    def __init__(self, output: str) -> None:
        tags = ("output",)
        self._tags = {"output": output}
        self.clips = Counter(f"{PREFIX}clips_encoded", "clips encoded (committed shards)", tags)
        self.failed = Counter(f"{PREFIX}samples_failed", "samples recorded as error rows, by error type and stage",
                              (*tags, "error_type", "stage"))
        self.committed = Counter(f"{PREFIX}shards_committed", "shards published with their commit marker", tags)
        self.given_up = Counter(f"{PREFIX}shards_given_up", "shards given up after max attempts", tags)
        self.wait = Counter(f"{PREFIX}encoder_wait_seconds", "encoder seconds spent waiting for decoded clips", tags)
        self.encode = Counter(f"{PREFIX}encode_seconds", "encoder seconds spent encoding", tags)
        self.decode = Counter(f"{PREFIX}decode_seconds", "decode-worker seconds spent decoding video", tags)
        self.psnr = Gauge(f"{PREFIX}quality_psnr_db", "lowest quality-canary PSNR of the last committed shard",
                          tags)

    def shard_committed(self, record: CommitRecord, errors: list[dict[str, Any]]) -> None:
        """``record`` as publish_shard returns it; ``errors`` the shard's error rows."""
        self.committed.inc(1, self._tags)
        self._inc(self.clips, record.rows)
        timings = record.timings
        self._inc(self.wait, timings.decode_wait_seconds)
        self._inc(self.encode, timings.encode_seconds)
        self._inc(self.decode, timings.decode_seconds)
        for (error_type, stage), count in Tally((e["error_type"], e["stage"]) for e in errors).items():
            self.failed.inc(count, {**self._tags, "error_type": error_type, "stage": stage})
        if record.canary and record.canary.psnr_min is not None:
            self.psnr.set(record.canary.psnr_min, self._tags)

    def shard_given_up(self) -> None:
        self.given_up.inc(1, self._tags)

    def _inc(self, counter: Counter, value: float) -> None:
        if value > 0:  # Ray refuses non-positive increments
            counter.inc(value, self._tags)
