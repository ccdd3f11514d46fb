"""SIGTERM and SIGINT end a job cleanly: no new shards, a grace period for running ones, a summary.

KubeRay, Slurm and ``ray job stop`` stop a job with SIGTERM (then SIGKILL after their own grace
period); Ctrl-C sends SIGINT. The first signal asks the driver to stop; a second one abandons the
running shards at once. Either way the driver writes its summary and exits 128 + the signal.
"""

from __future__ import annotations

import signal
import threading

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """Set from a signal handler; the driver polls it. Passed explicitly, never global."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.requested = threading.Event()
        self.forced = threading.Event()
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        """(Re)install the handlers; call again after ``ray.init``, which sets its own for SIGTERM.
        Only the main thread may do this; elsewhere (a caller's thread) signals keep their old meaning."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in SIGNALS:
            previous = signal.signal(signum, self._handle)
            self._previous.setdefault(signum, previous)

    def restore(self) -> None:
        """Put back the handlers found by the first ``install`` (for callers that go on running)."""
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def _handle(self, signum: int, frame: object) -> None:
        # Only flags here: printing from a handler can interrupt a print in progress (reentrant I/O).
        if self.signum is None:
            self.signum = signum
            self.requested.set()
        else:
            self.forced.set()

    @property
    def name(self) -> str | None:
        return signal.Signals(self.signum).name if self.signum is not None else None

    @property
    def exit_code(self) -> int:
        return 128 + self.signum if self.signum is not None else 0
