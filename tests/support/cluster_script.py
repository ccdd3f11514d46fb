"""Tests that build a multi-node Ray cluster (``ray.cluster_utils.Cluster``) run their ``main(folder)`` in a
fresh Python: a process joins one Ray cluster only, and the session's own head is already joined."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
# The head: no CPU for tasks, and a node that goes away declared dead after ~1.5 s of missed health
# checks (Ray's defaults take 15 s or more: a lab tunes them; here they only make a test wait)
HEAD_NODE_ARGS = {"num_cpus": 0, "_system_config": {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500,
                                                    "health_check_timeout_ms": 500,
                                                    "health_check_failure_threshold": 3}}


def run_cluster_script(script: str, folder: Path, timeout: float) -> dict[str, Any]:
    """Runs ``python script folder`` under a deadline and returns the JSON report it prints last."""
    result = subprocess.run([sys.executable, script, str(folder)], capture_output=True, text=True, timeout=timeout,
                            cwd=REPO, env={**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
                                           "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    # (the raylet of a removed node may print after it: Ray forwards its workers' and raylets' logs)
    return json.loads(next(line for line in reversed(result.stdout.splitlines()) if line.startswith('{"')))


def encoder_mid_shard(deadline: float) -> Any:
    """The progress of the job's encoder actor once it has encoded a clip (called inside ``main``)."""
    import ray

    while time.monotonic() < deadline:
        for name in ray.util.list_named_actors():
            if name.startswith("encoder-"):
                try:
                    progress = ray.get(ray.get_actor(name).progress.remote(), timeout=5)
                except Exception:  # noqa: BLE001 - still starting
                    continue
                if progress.clips >= 1:
                    return progress
        time.sleep(0.05)
    raise AssertionError("the encoder was never seen mid-shard")
