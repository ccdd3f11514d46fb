"""A local Ray runtime that the driver starts ends with the driver, even when the driver is killed (SIGKILL).

Ray stops what it started when the driver leaves, and most of its processes die with a killed driver too;
its dashboard agent and runtime-env agent do not (measured with Ray 2.60: both stay, children of init, and
they ignore SIGTERM). So before it starts Ray the driver starts this watchdog, in a session of its own (a
Ctrl-C to the driver's terminal does not reach it). It waits for the driver's end (the pipe it reads closes,
however the driver ended), then kills every process that still holds a file of the driver's Ray session (its
log files, in the session folder). A driver that joined a running cluster tells it so, and it leaves.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

NO_SESSION = "-"


class Watchdog:
    """Started before ``ray.init``; ``watch`` names the session the driver started (or none)."""

    def __init__(self) -> None:
        read, self._write = os.pipe()  # the write end is not inherited: it closes when the driver ends
        self.process = subprocess.Popen([sys.executable, "-m", "pipeline.job.local_ray", str(read)], pass_fds=(read,),
                                        start_new_session=True, stdin=subprocess.DEVNULL,
                                        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
        os.close(read)

    def watch(self, session_dir: str | None) -> None:
        os.write(self._write, f"{session_dir or NO_SESSION}\n".encode())


def holders(folder: str, skip: int) -> list[int]:
    """Processes (but ``skip``) with a file open under ``folder``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == skip:
            continue
        try:
            targets = [os.readlink(f"/proc/{entry}/fd/{fd}") for fd in os.listdir(f"/proc/{entry}/fd")]
        except OSError:  # gone, or not ours to look at
            continue
        if any(target.startswith(folder + "/") for target in targets):
            found.append(int(entry))
    return found


def main(read: int) -> None:
    with os.fdopen(read, "rb") as pipe:
        session = pipe.readline().decode().strip()
        pipe.read()  # until the driver ends
    if not session or session == NO_SESSION:
        return
    for pid in holders(session, os.getpid()):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


if __name__ == "__main__":
    main(int(sys.argv[1]))
