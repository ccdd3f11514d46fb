"""WebDataset tar shards for tests: write them, and damage them in known places.

``make_shard`` is the primitive (the bytes of one tar of given samples); ``write_shards`` is the one
folder of tiny-video shards every job, dataset and inspection test reads.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import webdataset as wds

from tests.support.images import encode_image, photo
from tests.support.videos import encode, random_bytes, smooth_frames, truncated


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


@dataclass(frozen=True)
class Shards:
    """A folder of shards and what each must give, so a test checks rows against keys, not counts it worked out."""

    folder: Path
    good: dict[str, list[str]]  # shard name -> keys that must give clips, in input order
    broken: dict[str, list[str]]  # shard name -> keys that must give an error row

    @property
    def names(self) -> list[str]:
        """The shards' names, as the output names their files and records."""
        return list(self.good)

    @property
    def urls(self) -> list[str]:
        """Each shard's path, in order: what a ShardEncoder or the reader is given."""
        return [str(self.folder / f"{name}.tar") for name in self.good]

    @property
    def spec(self) -> str:
        """Every shard as one brace range, as a user passes --input."""
        return str(self.folder / f"part-{{000000..{len(self.good) - 1:06d}}}.tar")


BROKEN = {"random": lambda video, i: random_bytes(3000, seed=i),  # not a video (or an image) at all
          "truncated": lambda video, i: truncated(video, 0.3)}  # an mp4 cut before its index (an image, in its pixels)


def write_shards(folder: Path, samples: int | Sequence[int], shards: int = 1, *, frames: int | Sequence[int] = 12,
                 sizes: Sequence[tuple[int, int]] = ((48, 64),), broken: Mapping[int, str] | None = None,
                 video: bytes | None = None, images: Mapping[int, str] | None = None) -> Shards:
    """``shards`` tars of ``samples`` videos (or one tar per count in a list), named ``part-000000.tar`` on.

    Sample ``i`` of shard ``s`` is ``s{s}-v{i:03d}``: an mp4 of ``frames[i]`` frames of ``sizes[i]``
    (height, width), both cycled, of smooth waves shifted per sample (or ``video``'s bytes), with a
    ``txt`` caption and a ``json`` part. ``images`` maps sample indexes to an image extension (jpg, png,
    webp): those samples are a still of the same waves in that format instead of the mp4. ``broken``
    maps sample indexes to a kind of ``BROKEN``, in every shard that has them.
    """
    folder.mkdir(parents=True, exist_ok=True)
    counts = [samples] * shards if isinstance(samples, int) else list(samples)
    frames = [frames] if isinstance(frames, int) else list(frames)
    broken = broken or {}
    good: dict[str, list[str]] = {}
    bad: dict[str, list[str]] = {}
    for s, count in enumerate(counts):
        name, records = f"part-{s:06d}", []
        good[name], bad[name] = [], []
        for i in range(count):
            key = f"s{s}-v{i:03d}"
            height, width = sizes[i % len(sizes)]
            media = images.get(i, "mp4") if images else "mp4"
            if media != "mp4":
                data = encode_image(photo(height, width, 3 * i + s), media)
            else:
                data = video if video is not None else \
                    encode(np.roll(smooth_frames(frames[i % len(frames)], height, width), 3 * i + s, axis=2))
            if i in broken:
                data = BROKEN[broken[i]](data, i)
            (bad if i in broken else good)[name].append(key)
            records.append({"__key__": key, media: data, "txt": f"caption {key}", "json": {"s": s, "i": i}})
        (folder / f"{name}.tar").write_bytes(make_shard(records))
    return Shards(folder, good, bad)


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
