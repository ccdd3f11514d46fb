"""Processes the tests start and kill."""

from __future__ import annotations

import os


def gone(pid: int) -> bool:
    """Whether no process has this pid (a killed one that its parent has reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False
