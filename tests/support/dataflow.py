"""Driving ShardEncoder and its dataflow in the test process, against the session's Ray head.

Cheaper than the CLI (no driver process, no encoder actor start-up) while running the same code an
encoder actor runs, several shard calls at a time like it.
"""

from __future__ import annotations

import concurrent.futures
import os
from pathlib import Path

from pipeline.encode.shard_loop import EncodeSettings, ShardLoop
from pipeline.job.dataflow import Dataflow
from pipeline.job.decode_capacity import DecodeWorkers
from pipeline.job.encoder_actor import OPENED, SHARDS_IN_FLIGHT
from pipeline.job.shard_encoder import ShardEncoder
from pipeline.output.records import ActorInfo, CommitRecord
from pipeline.output.sink import OutputSink
from pipeline.reading import ErrorRecord, ReadConfig, read_shard
from tests.support.outputs import ids, read_rows


FRAMES = (30, 21, 40)  # video lengths, cycled: clips of every policy, whole videos of several lengths


def read_config(clips: str, num_frames: int = 5) -> ReadConfig:
    """What the dataflow tests read: 32x32 clips for the tiny model (temporal compression 4)."""
    return ReadConfig(num_frames=num_frames, temporal_compression=4, resolution=(32, 32), clips=clips)


def make_encoder(out: Path, vae, config: ReadConfig, decode_workers: DecodeWorkers | int,
                 batch_size: int) -> ShardEncoder:
    """A ShardEncoder set up as EncoderActor sets it up (whole videos stream in pieces of 8 frames)."""
    pieces = 8 if config.clip_policy == "whole" else None
    workers = decode_workers if isinstance(decode_workers, DecodeWorkers) else DecodeWorkers(decode_workers)
    loop = ShardLoop(vae, EncodeSettings(batch_size, "float32", chunk_frames=pieces, piece_frames=pieces))
    return ShardEncoder(loop, Dataflow(config, None, pieces, workers), OutputSink(str(out)), {"test": True},
                        run_id="test", actor=ActorInfo(os.getpid(), "test", "cpu"))


def encode_shards(encoder: ShardEncoder, urls: list[str], deadline: float) -> list[CommitRecord]:
    """The shards' commit records, with as many shard calls in flight as the driver gives an actor, each sent once
    the one before is open (as the driver sends them). A hang fails."""
    pool = concurrent.futures.ThreadPoolExecutor(SHARDS_IN_FLIGHT)
    try:
        futures = []
        for url in urls:
            if len(futures) >= SHARDS_IN_FLIGHT:
                futures[-SHARDS_IN_FLIGHT].result(timeout=deadline)
            calls = encoder.encode_shard(url, 1)
            assert next(calls) == OPENED
            futures.append(pool.submit(lambda calls: list(calls)[-1], calls))
        done, pending = concurrent.futures.wait(futures, timeout=deadline)
        assert not pending, f"the job did not finish within {deadline} s: it hangs"
        return [future.result() for future in futures]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def calls_of(samples: int, monkeypatch) -> None:
    """Every call of the dataflows made from now on holds ``samples`` samples (fewer at a shard's end)."""
    from pipeline.job import dataflow

    monkeypatch.setattr(dataflow, "FIRST_CALL_SAMPLES", samples)
    monkeypatch.setattr(dataflow, "MAX_CALL_SAMPLES", samples)
    monkeypatch.setattr(dataflow, "CALL_SECONDS", 1e6)  # finite: the size rule divides it into a count


def expected(url: str, config: ReadConfig) -> tuple[list[tuple[str, int]], list[str]]:
    """(key, clip index) of every clip the reader gives, in input order, and the keys of failed samples."""
    clips, errors = [], []
    for item in read_shard(url, config):
        if isinstance(item, ErrorRecord):
            errors.append(item.key)
        else:
            clips.append((item.info.key, item.info.clip_index))
    return clips, errors


def written(out: Path, url: str) -> tuple[list[tuple[str, int]], list[str]]:
    """What ``expected`` says, from the shard's files: (key, clip index) of its rows and the keys of its error rows."""
    name = Path(url).name.removesuffix(".tar")
    return ids(read_rows(out, "latents", [name])), [error["key"] for error in read_rows(out, "errors", [name])]
