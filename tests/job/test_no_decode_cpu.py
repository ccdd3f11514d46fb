"""A cluster with no CPU at all for decoding: the job ends at once, saying what to add.

Ray's multi-node test cluster in a subprocess (a process joins one cluster only): a head with no
CPU for tasks and a "GPU node" whose one CPU the encoder actor takes.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from tests.support.cluster_script import HEAD_NODE_ARGS, run_cluster_script

@pytest.mark.slow
def test_a_cluster_without_cpu_for_decoding_fails_fast_with_what_to_add(tmp_path):
    report = run_cluster_script(__file__, tmp_path, timeout=180)
    assert report["error"] == "JobError" and report["seconds"] < 30, report
    assert report["message"].startswith("no CPU for decode workers: the cluster has 1 CPU(s) on 2 node(s)"), report
    assert "add CPU nodes" in report["message"], report


def main(folder: Path) -> None:
    import ray
    from ray.cluster_utils import Cluster

    from pipeline.job.config import JobConfig
    from pipeline.job.driver import NAMESPACE, JobError, run_job
    from tests.support.jobs import TINY_MODEL
    from tests.support.shards import write_shards

    cluster = Cluster(initialize_head=True, head_node_args=HEAD_NODE_ARGS)
    os.environ["RAY_ADDRESS"] = cluster.address  # never any other Ray instance on this machine
    try:
        cluster.add_node(num_cpus=1, num_gpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, namespace=NAMESPACE, logging_level="warning")
        data = write_shards(folder / "shards", 2, shards=2, frames=20)
        started = time.monotonic()
        try:
            run_job(JobConfig.from_flags(input=data.spec, output=str(folder / "out"), model=str(TINY_MODEL),
                                         num_frames=17, resolution=(64, 64), dtype="float32", shared_output=True),
                    lambda line: None)
            outcome = {"error": None}
        except JobError as err:
            outcome = {"error": "JobError", "message": str(err)}
        print(json.dumps({**outcome, "seconds": time.monotonic() - started}))
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
