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


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free now: held open together, so the OS cannot hand out one twice."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    return free_ports(1)[0]


class RayHead:
    # 3 CPUs: a job gets its encoder actor and, by default, two decode workers (more than one, as on a
    # cluster, in fewer processes: each costs a start and its imports, and each xdist worker has a head)
    def __init__(self, num_cpus: int = 3) -> None:
        self.num_cpus = num_cpus
        self.temp_dir = tempfile.mkdtemp(prefix="rt-", dir="/tmp")  # short: Ray's socket paths have a limit
        self.process: subprocess.Popen | None = None
        self._choose_ports()

    def _choose_ports(self) -> None:
        # all five chosen here: Ray's defaults (52365 for the agent, 10001 for the client server) would be
        # another head's, as each pytest-xdist worker starts one
        self.port, self.dashboard_port, self.metrics_port, self.agent_port, self.client_port = free_ports(5)
        self.address = f"127.0.0.1:{self.port}"
        self.dashboard_url = f"http://127.0.0.1:{self.dashboard_port}"
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"  # Prometheus format

    @property
    def env(self) -> dict[str, str]:
        """Environment for processes that should use this cluster (drivers, ray job submit)."""
        bin_dir = str(Path(sys.executable).parent)
        return {**os.environ, "RAY_ADDRESS": self.address, "RAY_AUTH_MODE": "disabled",
                "RAY_USAGE_STATS_ENABLED": "0", "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}

    def start(self, timeout: float = 90.0, attempts: int = 3) -> "RayHead":
        """Starts the head; if ``ray start`` exits at once (a port taken meanwhile, e.g. by the other xdist
        worker's head), again on fresh ports."""
        for attempt in range(1, attempts + 1):
            exited = self._start_once(timeout)
            if exited is None:
                return self
            if attempt == attempts:
                raise RuntimeError(f"ray start exited: {exited}")
            self._choose_ports()
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> str | None:
        """None once the head answers; the end of its log if ``ray start`` exited."""
        env = {k: v for k, v in self.env.items() if k != "RAY_ADDRESS"}
        self.log = open(Path(self.temp_dir) / "head.log", "w")
        self.process = subprocess.Popen(
            [RAY, "start", "--head", "--block", f"--port={self.port}", f"--dashboard-port={self.dashboard_port}",
             "--dashboard-host=127.0.0.1", "--include-dashboard=true", f"--num-cpus={self.num_cpus}",
             f"--metrics-export-port={self.metrics_port}", f"--dashboard-agent-listen-port={self.agent_port}",
             f"--ray-client-server-port={self.client_port}", f"--temp-dir={self.temp_dir}", "--disable-usage-stats"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)  # what it started before it gave up
                except ProcessLookupError:
                    pass
                self.process = None
                self.log.close()
                return Path(self.log.name).read_text()[-2000:]
            if _listening(self.dashboard_port) and _listening(self.port):
                return None
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
