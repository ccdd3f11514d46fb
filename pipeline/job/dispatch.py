"""Handing shards to encoder actors until each is committed or given up, or a signal stops the run.

Each actor takes up to ``SHARDS_IN_FLIGHT`` shard calls at once (the next shards decode while one
encodes). A shard call first reports that its shard is open (queued for decoding), then its commit
record: an actor is sent its next shard only once the one before is open, so its shards open in the
order they were sent (an actor runs concurrent calls in any order). Free slots are handed out a shard
per actor per round, so shards spread over the actors.

An actor that fails gets no shard until a health probe returns: Ray restarts it (reloading the model
takes a while) and calls made meanwhile would fail without running, which must not count as attempts.
A failed shard is queued again until ``max_shard_attempts``, then given up. After a signal no shard is
started; running ones may commit until the grace period ends (or a second signal), then are abandoned.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

import ray
from ray.exceptions import ActorDiedError, RayActorError, RayTaskError

from ..output.layout import shard_name
from ..output.records import CommitRecord
from ..output.sink import OutputSink
from ..reading.records import describe
from .config import Run
from .decode_capacity import NoDecodeCPU
from .encoder_actor import OPENED, SHARDS_IN_FLIGHT, ActorIdentity, ActorProgress
from .errors import JobError
from .metrics import JobMetrics
from .stopping import StopRequest

PROGRESS_TIMEOUT = 1.0  # seconds all running actors together have to report their shard's progress
PROBE_PAUSE = 0.5  # seconds between health probes of an actor that is still restarting


@dataclass
class _Call:
    actor: int
    url: str
    opened: bool = False


class Dispatch:
    """The shards still to do, the shard calls in flight and the actors being restarted."""

    def __init__(self, actors: list, todo: list[str], sink: OutputSink, max_attempts: int,
                 log: Callable[[str], None]) -> None:
        self.actors, self.sink, self.max_attempts, self.log = actors, sink, max_attempts, log
        self.total = len(todo)
        self.queue = deque(todo)
        self.attempts: Counter[str] = Counter()
        self.running: dict = {}  # shard call (its stream of replies) -> _Call
        self.busy: Counter[int] = Counter()  # shard calls in flight per actor
        self.opening: set[int] = set()  # actors with a shard call not open yet
        self.probes: dict = {}  # health probe -> actor being restarted
        self.gone: set[int] = set()  # actors Ray will not restart
        self.committed = self.given_up = 0
        self.abandoned: list[str] = []
        self.metrics = JobMetrics(sink.url)

    def send(self) -> None:
        """A shard to each actor that is up, has a free slot and no shard call still opening."""
        restarting = set(self.probes.values())
        for index in sorted(range(len(self.actors)), key=lambda i: self.busy[i]):
            if not self.queue:
                return
            if index in restarting or index in self.gone or index in self.opening or \
                    self.busy[index] >= SHARDS_IN_FLIGHT:
                continue
            url = self.queue.popleft()
            self.attempts[url] += 1
            self.running[self.actors[index].encode_shard.remote(url, self.attempts[url])] = _Call(index, url)
            self.busy[index] += 1
            self.opening.add(index)

    def wait(self, timeout: float) -> None:
        """Handles what came within ``timeout``: a shard call's news or a health probe."""
        if not self.running and not self.probes:
            raise JobError("every encoder actor has died and none can be restarted")
        done, _ = ray.wait([*self.running, *self.probes], num_returns=1, timeout=timeout)
        for ref in done:
            if ref in self.probes:
                self._probed(ref)
            else:
                self._replied(ref)

    def _probed(self, ref) -> None:
        index = self.probes.pop(ref)
        try:
            identity: ActorIdentity = ray.get(ref)
            if identity.error:  # restarted, but its model did not load
                raise JobError(identity.error)
        except ActorDiedError as err:
            self.gone.add(index)
            self.log(f"encoder actor {index} is gone for good: {describe(err)}")
        except RayActorError:
            time.sleep(PROBE_PAUSE)  # still restarting
            self.probes[self.actors[index].identity.remote()] = index

    def _replied(self, stream) -> None:
        call = self.running[stream]
        try:
            reply = ray.get(next(stream))
        except RayActorError as err:
            reason = f"encoder actor died ({type(err).__name__}): {describe(err)}"
            if call.actor not in self.probes.values():  # no shard for it until a probe says it is back
                self.probes[self.actors[call.actor].identity.remote()] = call.actor
        except RayTaskError as err:
            if isinstance(err.cause, NoDecodeCPU):
                raise JobError(str(err.cause)) from None
            reason = describe(err)
        except StopIteration:
            reason = "the shard call ended without a commit record"
        else:
            if reply == OPENED:
                call.opened = True
                self.opening.discard(call.actor)
                return
            self._ended(stream)
            self._committed(reply)
            return
        self._ended(stream)
        self._failed(call.url, reason)

    def _ended(self, stream) -> None:
        call = self.running.pop(stream)
        self.busy[call.actor] -= 1
        if not call.opened:
            self.opening.discard(call.actor)

    def _committed(self, record: CommitRecord) -> None:
        self.committed += 1
        self.sink.committed(record)

    def _failed(self, url: str, reason: str) -> None:
        name, attempts = shard_name(url), self.attempts[url]
        if attempts < self.max_attempts:
            self.log(f"shard {name} failed (attempt {attempts}/{self.max_attempts}): {reason}; re-queued")
            self.queue.append(url)
            return
        self.given_up += 1
        self.metrics.shard_given_up()
        self.log(f"shard {name} given up after {attempts} attempts: {reason}")
        self.sink.give_up(url, attempts, reason)

    def abandon(self) -> None:
        self.abandoned = sorted(shard_name(call.url) for call in self.running.values())
        if self.abandoned:
            self.log(f"abandoned {len(self.abandoned)} running shard(s): {', '.join(self.abandoned)}")

    def progress_line(self, started: float, grace_ends: float | None = None) -> str:
        """Committed shards, and the clips of running ones (every actor asked at once, at most 1 s in all); after a
        signal (``grace_ends``: the end of the grace period), what is left of the running shards."""
        elapsed = time.perf_counter() - started
        asked = [self.actors[index].progress.remote() for index in {call.actor for call in self.running.values()}]
        answered, _ = ray.wait(asked, num_returns=len(asked), timeout=PROGRESS_TIMEOUT) if asked else ([], [])
        partial = waiting = 0
        for ref in answered:  # an actor that is slow or restarting is left out
            try:
                progress: ActorProgress = ray.get(ref)
            except RayActorError:
                continue
            partial += progress.clips
            waiting += progress.workers_waiting_for_cpu
        records = self.sink.records
        clips = sum(record.rows for record in records) + partial
        errors = sum(record.errors for record in records)
        done = self.committed
        if grace_ends is not None:
            left = f"stopping: {len(self.running)} running shard(s) may still commit ({partial} clips of them " \
                   f"encoded), {max(grace_ends - time.monotonic(), 0):.0f} s of the grace period left"
        else:
            left = "ETA " + (f"{elapsed / done * (self.total - done - self.given_up):.0f} s" if done else "unknown")
        return (f"[{elapsed:7.1f} s] shards {done}/{self.total} done, {len(self.running)} running, {self.given_up} "
                f"given up; {clips} clips ({clips / elapsed:.2f} clips/s), {errors} errors; {left}"
                + (f"; {waiting} decode worker(s) waiting for a CPU" if waiting else ""))


def dispatch(actors: list, todo: list[str], sink: OutputSink, run: Run, log: Callable[[str], None],
             started: float, stop: StopRequest) -> list[str]:
    """Runs the dispatch to its end: every shard committed or given up, the lease lost, or a signal.
    Returns the shards abandoned mid-way by a signal."""
    work = Dispatch(actors, todo, sink, run.max_shard_attempts, log)
    last_report = time.perf_counter()
    deadline: float | None = None  # of the grace period after a signal
    while work.queue or work.running:
        if lost := sink.lease_lost():
            raise JobError(f"{lost}; this job stopped (its committed shards are kept)")
        if stop.requested.is_set() and deadline is None:
            deadline = time.monotonic() + run.grace_seconds
            log(f"{stop.name} received: no new shards; {len(work.running)} running shard(s) get "
                f"{run.grace_seconds:g} s to commit (send it again to stop at once)")
        if deadline is None:
            work.send()
        elif not work.running or stop.forced.is_set() or time.monotonic() >= deadline:
            work.abandon()
            break
        work.wait(0.5 if deadline is not None else min(run.progress_seconds, 1.0))
        sink.save_progress()
        if time.perf_counter() - last_report >= run.progress_seconds:
            log(work.progress_line(started, deadline))
            last_report = time.perf_counter()
    return work.abandoned
