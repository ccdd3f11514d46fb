"""Two nodes, and the one holding the encoder goes away mid-shard: its shards are encoded again on
the other node (decode workers included) and the output equals a clean run's.

Each node has its own CPUs and one "GPU" (a declared resource: the encoder runs on CPU), so the
encoder actor and its decode workers live on one node. The cluster is Ray's own multi-node test
cluster, started in a subprocess (a process joins one cluster only) under a deadline.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support.cluster_script import HEAD_NODE_ARGS, encoder_mid_shard, run_cluster_script

@pytest.mark.slow
def test_losing_the_encoders_node_mid_shard_re_encodes_its_shards_elsewhere_identically(tmp_path):
    report = run_cluster_script(__file__, tmp_path, timeout=300)
    assert report["removed_node_held_encoder"] and report["encoder_moved"], report
    assert report["summary"]["shards"]["committed"] == 4
    assert any(attempt > 1 for attempt in report["attempts"].values()), report  # its shards were re-queued
    assert report["identical"], report


def main(folder: Path) -> None:
    import ray
    from ray.cluster_utils import Cluster

    from pipeline.job.config import JobConfig
    from pipeline.job.driver import NAMESPACE, run_job
    from tests.support.jobs import TINY_MODEL
    from tests.support.outputs import read_rows
    from tests.support.shards import write_shards

    cluster = Cluster(initialize_head=True, head_node_args=HEAD_NODE_ARGS)
    os.environ["RAY_ADDRESS"] = cluster.address  # never any other Ray instance on this machine
    try:
        nodes = [cluster.add_node(num_cpus=2, num_gpus=1) for _ in range(2)]
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, namespace=NAMESPACE, logging_level="warning")
        data = write_shards(folder / "shards", 6, shards=4, frames=40)

        def job(out: str) -> JobConfig:
            return JobConfig.from_flags(input=data.spec, output=out, model=str(TINY_MODEL), num_frames=5,
                                        resolution=(32, 32), clips="all", batch_size=2, num_actors=1,
                                        gpus_per_actor=1, dtype="float32", progress_seconds=1,
                                        shared_output=True)  # the nodes share this machine's disk

        logs: list[str] = []
        outcome: dict = {}
        runner = threading.Thread(target=lambda: outcome.update(summary=run_job(job(str(folder / "cut")), logs.append)),
                                  daemon=True)
        runner.start()
        progress = encoder_mid_shard(deadline=time.monotonic() + 120)
        victim = next(node for node in nodes if node.node_id == progress.node_id)
        cluster.remove_node(victim, allow_graceful=False)
        runner.join(timeout=180)
        assert not runner.is_alive(), "the job did not finish after its encoder's node went away"
        records = _records(folder / "cut")
        run_job(job(str(folder / "clean")), lambda line: None)
        identical = all(read_rows(folder / "cut", kind) == read_rows(folder / "clean", kind)
                        for kind in ("latents", "errors"))
        print(json.dumps({
            "removed_node_held_encoder": True, "summary": outcome["summary"].to_dict() if outcome else {},
            "encoder_moved": progress.pid not in {r["actor"]["pid"] for r in records},
            "attempts": {r["shard"]: r["attempt"] for r in records},
            "identical": identical, "log": logs[-20:]}))
    finally:
        ray.shutdown()
        cluster.shutdown()


def _records(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "_committed").glob("*.json"))]


if __name__ == "__main__":
    main(Path(sys.argv[1]))
