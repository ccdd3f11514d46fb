"""Fixtures for the reading tests: a shard of mixed samples (the S3 server is session-wide)."""

from __future__ import annotations

import pytest

from tests.support.shards import make_shard
from tests.support.videos import encode, index_frames, random_bytes


@pytest.fixture(scope="session")
def mixed_samples() -> list[dict]:
    """Good and bad samples in one shard; see test_read_shard for what each must give."""
    return [
        {"__key__": "good-a", "mp4": encode(index_frames(40)), "txt": "a caption\n", "json": {"id": 1}},
        {"__key__": "no-video", "txt": "only text", "json": {"id": 2}},
        {"__key__": "empty", "mp4": b"", "json": {"id": 3}},
        {"__key__": "garbage", "mp4": random_bytes(4000), "json": {"id": 4}},
        {"__key__": "too-short", "mp4": encode(index_frames(7)), "json": {"id": 5}},
        {"__key__": "good-b", "mkv": encode(index_frames(20), container="matroska"), "txt": "b", "json": {"id": 6}},
    ]


@pytest.fixture(scope="session")
def mixed_shard(mixed_samples) -> bytes:
    return make_shard(mixed_samples)
