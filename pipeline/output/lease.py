"""One job per output folder: a lease taken by an atomic create-if-absent and kept by a heartbeat.

    OUT/_lease/<generation>.json      a LeaseRecord: run id, host, pid, started, last heartbeat, seconds, ...

The lease is the file of the highest generation. A job takes it by creating the next
generation's file with ``create_exclusively`` (``link(2)`` locally, a conditional put on object
stores): of two jobs racing, exactly one succeeds. The holder rewrites its own file every
``seconds / 3`` (the heartbeat); a file not rewritten for ``seconds`` has lapsed (its job was
killed), and the next job takes generation + 1 and removes the older files. A holder on the
same machine whose process is gone (killed with SIGKILL, the machine's own PID and start time
tell) is not waited for. A holder that
finds a higher generation than its own, or its own file gone, has lost the lease (it stalled
past the expiry and another job took over) and must stop. Expiry compares wall clocks of
different machines: they must agree to well within ``seconds``.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from .layout import OutputLayout
from .storage import create_exclusively, json_bytes, retrying, write_json


class OutputBusy(RuntimeError):
    """Another job holds the output's lease; the message names it."""


class LeaseLost(RuntimeError):
    """This job's lease lapsed and another job took the output over."""


@dataclass
class LeaseRecord:
    """A lease file's content: who holds the output, and since when."""

    run_id: str
    host: str
    pid: int
    seconds: float
    started_at: float
    renewed_at: float = 0.0
    boot_id: str | None = None
    process_start: int | None = None  # with the pid, names one process even after the pid is reused
    command: str = ""
    input: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LeaseRecord:
        """An unreadable record reads as one that lapsed long ago."""
        return cls(str(data.get("run_id")), str(data.get("host")), int(data.get("pid") or 0),
                   float(data.get("seconds", 0)), float(data.get("started_at", 0)), float(data.get("renewed_at", 0)),
                   data.get("boot_id"), data.get("process_start"), str(data.get("command", "")), data.get("input"))


@dataclass(frozen=True)
class Holder:
    generation: int
    record: LeaseRecord

    def expired(self, now: float) -> bool:
        return now > self.record.renewed_at + self.record.seconds or self.died_here()

    def died_here(self) -> bool:
        """The holder ran on this machine and its process is gone."""
        r = self.record
        if r.host != socket.gethostname() or r.boot_id != _boot_id() or not r.pid:
            return False
        return _process_start(r.pid) != r.process_start

    def describe(self, now: float | None = None) -> str:
        r = self.record
        now = time.time() if now is None else now
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(r.started_at))
        return (f"run {r.run_id} (pid {r.pid} on {r.host}, started {started}, last heartbeat "
                f"{now - r.renewed_at:.0f} s ago)")


class Lease:
    """This job's hold on ``layout``: ``acquire`` it, ``start_heartbeat``, ``release`` when done."""

    def __init__(self, layout: OutputLayout, run_id: str, seconds: float, log: Callable[[str], None] = print,
                 input: str | None = None) -> None:
        self.layout = layout
        self.seconds = float(seconds)
        self.log = log
        self.generation: int | None = None
        self.record = LeaseRecord(run_id, socket.gethostname(), os.getpid(), self.seconds, time.time(),
                                  boot_id=_boot_id(), process_start=_process_start(os.getpid()),
                                  command=" ".join(sys.argv), input=input)
        self.lost = threading.Event()
        self.lost_reason = ""
        self._stop_heartbeat = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def folder(self) -> str:
        return f"{self.layout.root}/_lease"

    def _path(self, generation: int) -> str:
        return f"{self.folder}/{generation:012d}.json"

    def holders(self) -> list[Holder]:
        """Every lease file, oldest generation first (normally one)."""
        fs = self.layout.fs
        fs.invalidate_cache(self.folder)
        try:
            names = retrying(lambda: fs.ls(self.folder, detail=False), f"listing {self.folder}")
        except FileNotFoundError:
            return []
        found = []
        for name in sorted(n.rsplit("/", 1)[-1] for n in names):
            stem = name.removesuffix(".json")
            if not (name.endswith(".json") and stem.isdigit()):
                continue  # temporary files of a local create
            try:
                record = json.loads(retrying(lambda: fs.cat_file(self._path(int(stem))), f"reading {name}"))
            except FileNotFoundError:
                continue  # released or cleaned up meanwhile
            except json.JSONDecodeError:
                record = {}  # unreadable: treated as lapsed
            found.append(Holder(int(stem), LeaseRecord.from_dict(record)))
        return found

    def acquire(self, wait: bool = False, stop: threading.Event | None = None, poll: float | None = None) -> None:
        """Take the lease, or raise OutputBusy naming the holder (``wait``: wait for it to end or lapse)."""
        poll = poll if poll is not None else min(5.0, self.seconds / 4)
        announced = None
        while True:
            holders = self.holders()
            current = holders[-1] if holders else None
            now = time.time()
            if current is not None and current.record.run_id == self.record.run_id:
                self.generation = current.generation  # our own create whose reply was lost
                return
            if current is not None and not current.expired(now):
                message = f"{self.layout.url} is in use by another job: {current.describe(now)}"
                if not wait:
                    raise busy(self.layout.url, current, now)
                if announced != current.generation:
                    self.log(f"{message}; waiting for it to finish (--wait)")
                    announced = current.generation
                if stop is not None and stop.wait(poll):
                    raise OutputBusy(f"stopped while waiting for {self.layout.url}: {current.describe()}")
                if stop is None:
                    time.sleep(poll)
                continue
            generation = current.generation + 1 if current else 1
            self.record.renewed_at = time.time()
            if create_exclusively(self.layout.fs, self._path(generation), json_bytes(self.record.to_dict())):
                self.generation = generation
                if current is not None:
                    why = "its process is gone" if current.died_here() else "its lease had lapsed"
                    self.log(f"took over {self.layout.url} from {current.describe(now)}: {why}")
                for old in holders:
                    self._remove(old.generation)
                return
            # another job created that generation first: look again

    def holder(self) -> Holder | None:
        """Another job that holds the output now (its lease has not lapsed), if any."""
        holders = self.holders()
        current = holders[-1] if holders else None
        return current if current is not None and not current.expired(time.time()) else None

    def renew(self) -> None:
        """Rewrite this job's lease file; raises LeaseLost if another job has taken the output."""
        holders = self.holders()
        mine = [h for h in holders if h.generation == self.generation]
        if not mine or holders[-1].generation != self.generation:
            taker = holders[-1].describe() if holders else "nobody (the lease files are gone)"
            raise LeaseLost(f"this job's lease on {self.layout.url} lapsed and it was taken over by {taker}")
        self.record.renewed_at = time.time()
        write_json(self.layout.fs, self._path(self.generation), self.record.to_dict())

    def start_heartbeat(self) -> None:
        self._thread = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop_heartbeat.wait(self.seconds / 3):
            try:
                self.renew()
            except LeaseLost as err:
                self.lost_reason = str(err)
                self.lost.set()
                return
            except Exception as err:  # noqa: BLE001 - storage trouble: try again at the next beat
                self.log(f"warning: could not renew the lease on {self.layout.url}: {type(err).__name__}: {err}")

    def release(self) -> None:
        """Stop the heartbeat and give the output back (only if this job still holds it)."""
        self._stop_heartbeat.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self.generation is None or self.lost.is_set():
            return
        try:
            self._remove(self.generation)
        except Exception as err:  # noqa: BLE001 - it lapses on its own
            self.log(f"warning: could not release the lease on {self.layout.url} ({type(err).__name__}: {err}); "
                     f"it lapses {self.seconds:g} s after the last heartbeat")
        self.generation = None

    def _remove(self, generation: int) -> None:
        try:
            self.layout.fs.rm(self._path(generation))
        except FileNotFoundError:
            pass


def busy(url: str, holder: Holder, now: float | None = None) -> OutputBusy:
    """What a job is told when another holds its output."""
    return OutputBusy(f"{url} is in use by another job: {holder.describe(now)}. Wait for it to finish (or pass "
                      "--wait), or use another --output")


def _boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id") as file:
            return file.read().strip()
    except OSError:
        return None


def _process_start(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot), None if there is none: a PID plus its
    start time names one process, even after the PID is reused."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            return int(file.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None
