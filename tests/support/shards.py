"""WebDataset tar shards for tests: write them, and damage them in known places."""

from __future__ import annotations

import io
import json
import tarfile

import webdataset as wds


def make_shard(samples: list[dict[str, object]]) -> bytes:
    """A tar shard from samples like {"__key__": "k", "mp4": b"...", "txt": "hi", "json": {...}}.

    Written with webdataset's TarWriter; str parts are UTF-8, dict parts JSON.
    """
    buffer = io.BytesIO()
    with wds.TarWriter(buffer) as writer:
        for sample in samples:
            writer.write({k: _encode(v) if not k.startswith("__") else v for k, v in sample.items()})
    return buffer.getvalue()


def _encode(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value).encode("utf-8")


def members(shard: bytes) -> list[tarfile.TarInfo]:
    """The members of a tar with their header (`offset`) and data (`offset_data`) positions."""
    with tarfile.open(fileobj=io.BytesIO(shard)) as tf:
        return tf.getmembers()


def member(shard: bytes, name: str) -> tarfile.TarInfo:
    return next(m for m in members(shard) if m.name == name)


def cut_inside(shard: bytes, name: str) -> bytes:
    """The shard cut in the middle of member `name`'s data."""
    info = member(shard, name)
    return shard[: info.offset_data + info.size // 2]


def cut_before(shard: bytes, name: str) -> bytes:
    """The shard cut exactly at the header of member `name` (a clean member boundary)."""
    return shard[: member(shard, name).offset]


def corrupt_header(shard: bytes, name: str) -> bytes:
    """The shard with member `name`'s header overwritten by garbage (same length)."""
    offset = member(shard, name).offset
    return shard[:offset] + b"\x7fnot a tar header" * 32 + shard[offset + 512 :]
