"""Whose fault a decode worker's death is: a pure function of what the encoder knows when it sees it.

A worker dies of a crash inside a video library, or for reasons of its own (its node went away,
the OOM killer). The first death is never a sample's fault: its call is decoded again in a fresh
worker, one parcel per sample. Only a death that repeats in a fresh worker while it surely decoded
the same sample blames that sample (a DecoderCrashed error row); the others lose nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

CRASH_MESSAGE = ("the worker process decoding this sample died twice, the second time in a fresh worker (a crash "
                 "inside the video decoder, or it was killed)")


@dataclass(frozen=True)
class Verdict:
    crashed: bool  # the first unfinished sample is to blame: it fails with DecoderCrashed
    suspicions: tuple[int, ...]  # each unfinished sample's deaths it may have caused, after this one
    retry: bool  # a sample is decoded again because a worker died on it (counted in the shard's record)


def blame(started: bool, one_per_parcel: bool, suspicions: tuple[int, ...]) -> Verdict:
    """``started``: the call was the worker's current one (not queued behind another, which loses nothing).
    ``one_per_parcel``: it sent a parcel at every sample's end, so its first unfinished sample is surely
    what the worker decoded (as when a single sample is unfinished). ``suspicions``: for each unfinished
    sample of the call, in order (at least one), the deaths it may have caused so far."""
    if not started:
        return Verdict(False, suspicions, retry=False)
    first, rest = suspicions[0], suspicions[1:]
    if one_per_parcel or not rest:
        if first >= 1:
            return Verdict(True, rest, retry=False)
        return Verdict(False, (first + 1, *rest), retry=True)
    return Verdict(False, tuple(s + 1 for s in suspicions), retry=True)
