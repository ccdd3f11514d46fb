"""A real Ray head node for the test session, started and stopped by the tests alone.

``ray stop`` would stop every Ray process on the machine, so the head runs in the
foreground (``--block``) in its own process group, which teardown signals directly.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RayHead:
    # 3 CPUs: a job gets its encoder actor and, by default, two decode workers (more than one, as on a
    # cluster, in fewer processes: each costs a start and its imports, and each xdist worker has a head)
    def __init__(self, num_cpus: int = 3) -> None:
        self.num_cpus = num_cpus
        self.port, self.dashboard_port, self.metrics_port = free_port(), free_port(), free_port()
        self.temp_dir = tempfile.mkdtemp(prefix="rt-", dir="/tmp")  # short: Ray's socket paths have a limit
        self.address = f"127.0.0.1:{self.port}"
        self.dashboard_url = f"http://127.0.0.1:{self.dashboard_port}"
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"  # Prometheus format
        self.process: subprocess.Popen | None = None

    @property
    def env(self) -> dict[str, str]:
        """Environment for processes that should use this cluster (drivers, ray job submit)."""
        bin_dir = str(Path(sys.executable).parent)
        return {**os.environ, "RAY_ADDRESS": self.address, "RAY_AUTH_MODE": "disabled",
                "RAY_USAGE_STATS_ENABLED": "0", "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}

    def start(self, timeout: float = 90.0) -> "RayHead":
        env = {k: v for k, v in self.env.items() if k != "RAY_ADDRESS"}
        self.log = open(Path(self.temp_dir) / "head.log", "w")
        self.process = subprocess.Popen(
            [RAY, "start", "--head", "--block", f"--port={self.port}", f"--dashboard-port={self.dashboard_port}",
             "--dashboard-host=127.0.0.1", "--include-dashboard=true", f"--num-cpus={self.num_cpus}",
             f"--metrics-export-port={self.metrics_port}",
             f"--dashboard-agent-listen-port={free_port()}",  # the defaults (52365, 10001) may be another
             f"--ray-client-server-port={free_port()}",  # head's: each pytest-xdist worker starts one
             f"--temp-dir={self.temp_dir}", "--disable-usage-stats"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ray start exited: {Path(self.log.name).read_text()[-2000:]}")
            if _listening(self.dashboard_port) and _listening(self.port):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("the Ray head did not come up in time")

    def stop(self) -> None:
        if self.process is None:
            return
        pgid = os.getpgid(self.process.pid)
        os.killpg(pgid, signal.SIGTERM)
        try:
            # `ray start --block`, gcs_server and raylet do not exit on SIGTERM (not within 30 s): waiting
            # longer than the dashboard's processes need to stop only delays the end of the session
            self.process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(pgid, signal.SIGKILL)  # workers still draining
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)
        self.process = None
        self.log.close()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0
