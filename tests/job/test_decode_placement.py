"""A cluster whose GPU node has no CPU to spare: decode workers run on the CPU-only node and the job ends.

Ray's own multi-node test cluster, started in a subprocess (a process joins one cluster only) under a
deadline: a head with no CPU for tasks, a "GPU node" (1 GPU, 1 CPU: the encoder actor takes both; the
encoder computes on CPU there) and a CPU-only node of 4 CPUs.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.support.cluster_script import HEAD_NODE_ARGS, run_cluster_script

@pytest.mark.slow
def test_decode_workers_spill_to_the_cpu_only_node_and_every_shard_is_committed(tmp_path):
    report = run_cluster_script(__file__, tmp_path, timeout=300)
    assert report["committed"] == 6 and report["shards"] == 6, report
    # each shard says where its workers ran (those up when it committed): 3 or more on the CPU-only node
    assert max(shard.get(report["cpu_node"], 0) for shard in report["decode_nodes"]) >= 3, report


def main(folder: Path) -> None:
    import ray
    from ray.cluster_utils import Cluster

    from pipeline.job.config import JobConfig
    from pipeline.job.driver import NAMESPACE, run_job
    from pipeline.output.layout import OutputLayout
    from tests.support.jobs import TINY_MODEL
    from tests.support.shards import write_shards

    cluster = Cluster(initialize_head=True, head_node_args=HEAD_NODE_ARGS)
    os.environ["RAY_ADDRESS"] = cluster.address  # never any other Ray instance on this machine
    try:
        cluster.add_node(num_cpus=1, num_gpus=1)
        cpu_node = cluster.add_node(num_cpus=4)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, namespace=NAMESPACE, logging_level="warning")
        data = write_shards(folder / "shards", 3, shards=6, frames=20)
        out = folder / "out"
        summary = run_job(JobConfig.from_flags(input=data.spec, output=str(out), model=str(TINY_MODEL), num_frames=17,
                                    resolution=(64, 64), dtype="float32", shared_output=True, progress_seconds=5),
                          lambda line: None)
        records = list(OutputLayout(str(out)).read_commit_records())
        print(json.dumps({"committed": summary.shards.committed, "shards": len(records),
                          "cpu_node": cpu_node.node_id,
                          "decode_nodes": [record.balance.decode_nodes for record in records]}))
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
