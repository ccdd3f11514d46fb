"""Handing shards to encoder actors until each is committed or given up, or a signal stops the run.

Each actor takes up to ``SHARDS_IN_FLIGHT`` shard calls at once (the next shards decode while one
encodes); free slots are handed out a shard per actor per round, so shards spread over the actors.
An actor that fails gets no shard until a health probe returns: Ray restarts it (reloading the
model takes a while) and calls made meanwhile would fail without running, which must not count as
attempts. A failed shard is queued again until ``max_shard_attempts``, then given up (recorded in
``_given_up/``). After a signal no shard is started; running ones may commit until the grace period
ends (or a second signal), then are abandoned.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

import ray
from ray.exceptions import ActorDiedError, RayActorError, RayTaskError

from ..output.layout import shard_name
from ..output.lease import Lease
from ..output.sink import OutputSink
from ..reading.records import describe
from .config import Run
from .decode_capacity import NoDecodeCPU
from .encoder_actor import SHARDS_IN_FLIGHT
from .errors import JobError
from .metrics import JobMetrics
from .stopping import StopRequest

PROGRESS_TIMEOUT = 1.0  # seconds all running actors together have to report their shard's progress
PROBE_PAUSE = 0.5  # seconds between health probes of an actor that is still restarting


class Outcome:
    """What this run did, filled in as it goes (so a signal or an error still leaves a record)."""

    def __init__(self) -> None:
        self.encoded: list[dict] = []  # commit records, as the actors return them
        self.given_up: list[str] = []
        self.abandoned: list[str] = []
        self.write_failures: list[str] = []


class Dispatch:
    """The shards still to do, the shard calls in flight and the actors being restarted."""

    def __init__(self, actors: list, todo: list[str], sink: OutputSink, max_attempts: int,
                 log: Callable[[str], None], outcome: Outcome) -> None:
        self.actors, self.sink, self.max_attempts, self.log, self.outcome = actors, sink, max_attempts, log, outcome
        self.total = len(todo)
        self.queue = deque(todo)
        self.attempts: Counter[str] = Counter()
        self.running: dict[Any, tuple[int, str]] = {}  # shard call -> (actor, shard url)
        self.busy: Counter[int] = Counter()  # shard calls in flight per actor
        self.probes: dict[Any, int] = {}  # health probe -> actor being restarted
        self.gone: set[int] = set()  # actors Ray will not restart
        self.sent = [0] * len(actors)  # shard calls sent to each actor since it (re)started: their order
        self.metrics = JobMetrics(sink.url)

    def send(self) -> None:
        """Fills the free shard slots of the actors that are up, one shard per actor per round."""
        restarting = set(self.probes.values())
        up = [i for i in range(len(self.actors)) if i not in restarting and i not in self.gone]
        while self.queue and up:
            free = [i for i in up if self.busy[i] < SHARDS_IN_FLIGHT]
            if not free:
                return
            for index in sorted(free, key=lambda i: self.busy[i])[:len(self.queue)]:
                url = self.queue.popleft()
                self.attempts[url] += 1
                self.running[self.actors[index].encode_shard.remote(url, self.attempts[url], self.sent[index])] = \
                    (index, url)
                self.busy[index] += 1
                self.sent[index] += 1

    def wait(self, timeout: float) -> None:
        """Handles what finished within ``timeout``: a shard call or a health probe."""
        if not self.running and not self.probes:
            raise JobError("every encoder actor has died and none can be restarted")
        done, _ = ray.wait([*self.running, *self.probes], num_returns=1, timeout=timeout)
        for ref in done:
            if ref in self.probes:
                self._probed(ref)
            else:
                self._finished(ref)

    def _probed(self, ref) -> None:
        index = self.probes.pop(ref)
        try:
            if "error" in (identity := ray.get(ref)):  # restarted, but its model did not load
                raise JobError(identity["error"])
            self.sent[index] = 0  # a restarted actor counts its calls afresh
        except ActorDiedError as err:
            self.gone.add(index)
            self.log(f"encoder actor {index} is gone for good: {describe(err)}")
        except RayActorError:
            time.sleep(PROBE_PAUSE)  # still restarting
            self.probes[self.actors[index].identity.remote()] = index

    def _finished(self, ref) -> None:
        index, url = self.running.pop(ref)
        self.busy[index] -= 1
        try:
            self.outcome.encoded.append(ray.get(ref))
            return
        except RayActorError as err:
            reason = f"encoder actor died ({type(err).__name__}): {describe(err)}"
            if index not in self.probes.values():  # no shard for it until a probe says it is back
                self.probes[self.actors[index].identity.remote()] = index
        except RayTaskError as err:
            if isinstance(err.cause, NoDecodeCPU):
                raise JobError(str(err.cause)) from None
            reason = describe(err)
        self._failed(url, reason)

    def _failed(self, url: str, reason: str) -> None:
        name, attempts = shard_name(url), self.attempts[url]
        if attempts < self.max_attempts:
            self.log(f"shard {name} failed (attempt {attempts}/{self.max_attempts}): {reason}; re-queued")
            self.queue.append(url)
            return
        self.outcome.given_up.append(name)
        self.metrics.shard_given_up()
        self.log(f"shard {name} given up after {attempts} attempts: {reason}")
        try:  # a storage failure here is reported, not raised: the exit status already says it
            self.sink.give_up(url, attempts, reason)
        except Exception as err:  # noqa: BLE001
            path = self.sink.layout.url_of(self.sink.layout.given_up(name))
            self.outcome.write_failures.append(f"{path}: {describe(err)}")
            self.log(f"warning: could not record the given-up shard in {path}: {describe(err)}")

    def abandon(self) -> None:
        self.outcome.abandoned = sorted(shard_name(url) for _, url in self.running.values())
        if self.outcome.abandoned:
            self.log(f"abandoned {len(self.outcome.abandoned)} running shard(s): {', '.join(self.outcome.abandoned)}")

    def progress_line(self, started: float) -> str:
        """Committed shards, and the clips of running ones (every actor asked at once, at most 1 s in all)."""
        encoded, given_up = self.outcome.encoded, len(self.outcome.given_up)
        elapsed = time.perf_counter() - started
        asked = [self.actors[index].progress.remote() for index in {index for index, _ in self.running.values()}]
        answered, _ = ray.wait(asked, num_returns=len(asked), timeout=PROGRESS_TIMEOUT) if asked else ([], [])
        partial = waiting = 0
        for ref in answered:  # an actor that is slow or restarting is left out
            try:
                progress = ray.get(ref)
            except RayActorError:
                continue
            partial += progress.get("clips", 0)
            waiting += progress.get("workers_waiting_for_cpu", 0)
        clips = sum(r["rows"] for r in encoded) + partial
        errors = sum(r["errors"] for r in encoded)
        done = len(encoded)
        eta = f"{elapsed / done * (self.total - done - given_up):.0f} s" if done else "unknown"
        return (f"[{elapsed:7.1f} s] shards {done}/{self.total} done, {len(self.running)} running, {given_up} given "
                f"up; {clips} clips ({clips / elapsed:.2f} clips/s), {errors} errors; ETA {eta}"
                + (f"; {waiting} decode worker(s) waiting for a CPU" if waiting else ""))


def dispatch(actors: list, todo: list[str], sink: OutputSink, run: Run, log: Callable[[str], None],
             started: float, stop: StopRequest, lease: Lease, outcome: Outcome) -> None:
    """Runs the dispatch to its end: every shard committed or given up, the lease lost, or a signal."""
    work = Dispatch(actors, todo, sink, run.max_shard_attempts, log, outcome)
    last_report = time.perf_counter()
    deadline: float | None = None  # of the grace period after a signal
    while work.queue or work.running:
        if lease.lost.is_set():
            raise JobError(f"{lease.lost_reason}; this job stopped (its committed shards are kept)")
        if stop.requested.is_set() and deadline is None:
            deadline = time.monotonic() + run.grace_seconds
            log(f"{stop.name} received: no new shards; {len(work.running)} running shard(s) get "
                f"{run.grace_seconds:g} s to commit (send it again to stop at once)")
        if deadline is None:
            work.send()
        elif not work.running or stop.forced.is_set() or time.monotonic() >= deadline:
            return work.abandon()
        work.wait(0.5 if deadline is not None else min(run.progress_seconds, 1.0))
        if time.perf_counter() - last_report >= run.progress_seconds:
            log(work.progress_line(started))
            last_report = time.perf_counter()
