"""Read a shard in-process: samples, then their clips. For tools, tests and small jobs.

The Ray job splits the same two steps across processes instead: `iter_samples`
on a reader, `decode_clips` in CPU workers.
"""

from __future__ import annotations

from collections.abc import Iterator

from .config import ReadConfig
from .decode import sample_clips
from .records import STAGE_SHARD, Clip, ErrorRecord
from .samples import iter_samples


def read_shard(shard_url: str, config: ReadConfig, storage_options: dict | None = None) -> Iterator[Clip | ErrorRecord]:
    """Every clip of every sample of a shard, with ErrorRecords for what failed. Never raises."""
    try:
        for item in iter_samples(shard_url, config, storage_options):
            if isinstance(item, ErrorRecord):
                yield item
            else:
                yield from sample_clips(item, config)
    except Exception as exc:  # noqa: BLE001 - a bug here must not stop a job either
        yield ErrorRecord.of(exc, STAGE_SHARD, shard_url)
