"""A CPU-only node holding a decode worker goes away mid-shard and no CPU is left for its replacement:
the replacement's calls join another worker, and the shard goes on to the same output as a clean run.

Before, the encoder waited for the replacement for as long as no CPU came free: on a cluster that does not
grow back, for ever, and silently. Ray's own multi-node test cluster, in a subprocess under a deadline:
a head with no CPU for tasks, a "GPU node" whose one CPU the encoder actor takes, and two CPU-only
nodes of one CPU each (one decode worker each).
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
def test_a_lost_decode_node_with_no_cpu_left_costs_nothing_and_the_shard_goes_on(tmp_path):
    report = run_cluster_script(__file__, tmp_path, timeout=400)
    assert report["finished"], report
    assert report["committed"] == 1 and report["attempt"] == 1, report  # the shard was not failed and retried
    assert report["workers_on_lost_node"] == 1, report
    assert report["most_waiting_for_cpu"] == 1, report  # the encoder's progress said what it waited for
    assert report["identical"], report


def main(folder: Path) -> None:
    import ray
    from ray.cluster_utils import Cluster

    from pipeline.job.config import JobConfig
    from pipeline.job.driver import NAMESPACE, run_job
    from pipeline.output.layout import OutputLayout
    from tests.support.jobs import TINY_MODEL
    from tests.support.outputs import read_rows
    from tests.support.shards import write_shards

    cluster = Cluster(initialize_head=True, head_node_args=HEAD_NODE_ARGS)
    os.environ["RAY_ADDRESS"] = cluster.address  # never any other Ray instance on this machine
    try:
        cluster.add_node(num_cpus=1, num_gpus=1)
        kept, lost = cluster.add_node(num_cpus=1), cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, namespace=NAMESPACE, logging_level="warning")
        data = write_shards(folder / "shards", 24, shards=1, frames=60)

        def job(out: str) -> JobConfig:
            return JobConfig.from_flags(input=data.spec, output=out, model=str(TINY_MODEL), num_frames=5,
                                        resolution=(32, 32), clips="all", batch_size=2, num_actors=1,
                                        gpus_per_actor=1, dtype="float32", progress_seconds=5, shared_output=True,
                                        decode_start_seconds=5)  # (30 by default)

        outcome: dict = {}
        runner = threading.Thread(target=lambda: outcome.update(summary=run_job(job(str(folder / "cut")), print)),
                                  daemon=True)
        runner.start()
        encoder_mid_shard(deadline=time.monotonic() + 120)
        on_lost = _decode_workers_on(lost.node_id)
        cluster.remove_node(lost, allow_graceful=False)
        most_waiting = _most_waiting_for_cpu(runner, deadline=time.monotonic() + 240)
        report = {"finished": not runner.is_alive(), "workers_on_lost_node": on_lost, "kept_node": kept.node_id,
                  "most_waiting_for_cpu": most_waiting}
        if report["finished"]:
            records = list(OutputLayout(str(folder / "cut")).read_commit_records())
            run_job(job(str(folder / "clean")), lambda line: None)
            report.update(committed=outcome["summary"].shards.committed, attempt=records[0].attempt,
                          identical=all(read_rows(folder / "cut", kind) == read_rows(folder / "clean", kind)
                                        for kind in ("latents", "errors")))
        print(json.dumps(report))
    finally:
        ray.shutdown()
        cluster.shutdown()


def _most_waiting_for_cpu(runner: threading.Thread, deadline: float) -> int:
    """The most decode workers the encoder reported waiting for a CPU while the job ran on."""
    import ray

    most = 0
    while runner.is_alive() and time.monotonic() < deadline:
        try:
            encoder = ray.get_actor(next(n for n in ray.util.list_named_actors() if n.startswith("encoder-")))
            most = max(most, ray.get(encoder.progress.remote(), timeout=5).workers_waiting_for_cpu)
        except Exception:  # noqa: BLE001 - the job is ending
            pass
        runner.join(timeout=0.5)
    return most


def _decode_workers_on(node_id: str) -> int:
    import ray
    from ray.util.state import list_actors

    return sum(1 for actor in list_actors(address=ray.get_runtime_context().gcs_address,
                                          filters=[("state", "=", "ALIVE")], limit=1000)
               if actor.class_name == "DecodeWorker" and actor.node_id == node_id)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
