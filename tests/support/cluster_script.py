"""Tests that build a multi-node Ray cluster (``ray.cluster_utils.Cluster``) run their ``main(folder)`` in a
fresh Python: a process joins one Ray cluster only, and the session's own head is already joined."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def run_cluster_script(script: str, folder: Path, timeout: float) -> dict[str, Any]:
    """Runs ``python script folder`` under a deadline and returns the JSON report it prints last."""
    result = subprocess.run([sys.executable, script, str(folder)], capture_output=True, text=True, timeout=timeout,
                            cwd=REPO, env={**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
                                           "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
