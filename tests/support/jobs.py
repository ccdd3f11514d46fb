"""The encode job's CLI run as a user runs it (its own process, against the session's Ray head), with the
tiny model and the flags that keep its clips small."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TINY_MODEL = REPO / "tests" / "fixtures" / "wfvae" / "tiny-4x"
SMALL_CLIPS = ["--model", str(TINY_MODEL), "--num-frames", "5", "--resolution", "32x32", "--batch-size", "2",
               "--progress-seconds", "1"]
ENCODE = [sys.executable, str(REPO / "jobs" / "encode_dataset.py")]


def run_cli(ray_head, *args: str, timeout: float = 240, check: bool = True, cwd: Path = REPO,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``jobs/encode_dataset.py *args`` to its end in ``env``, by default ``ray_head``'s (None: this process's);
    a failure shows the job's output, the first thing to read."""
    env = env if env is not None else getattr(ray_head, "env", None)
    result = subprocess.run([*ENCODE, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    if check and result.returncode != 0:
        raise AssertionError(f"job exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


def start_cli(ray_head, *args: str, log: Path) -> subprocess.Popen:
    """The job in the background, its output in ``log``, with SIGINT at its default as in a shell's foreground
    (a background process of a non-interactive shell would inherit it ignored), for tests that signal it."""
    return subprocess.Popen([*ENCODE, *args], env=ray_head.env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            cwd=REPO, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
