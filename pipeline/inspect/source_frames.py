"""The source frames of encoded clips, re-read from the input shards by key.

The reader is configured from the job's own settings (``_job.json`` -> JobConfig ->
``JobConfig.read.for_model``), so the same clip comes back: same frames, size and crop. Only the
samples whose key is wanted are decoded.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from ..job.config import make_config
from ..output.layout import shard_name
from ..output.manifest import Manifest
from ..reading import Clip, ErrorRecord, ReadConfig, iter_samples, list_shards, sample_clips

ClipId = tuple[str, str, int]  # (shard name, key, clip index)


def job_read_config(manifest: Manifest) -> ReadConfig:
    """The ReadConfig the job used, from its _job.json (credentials there are redacted, and unused here)."""
    job = make_config({**manifest.config, "storage_options": {}})
    return job.read.for_model(manifest.model.temporal_compression)


def read_source_clips(wanted: list[ClipId], input_spec: str, config: ReadConfig,
                      storage_options: dict[str, Any] | None = None) -> dict[ClipId, np.ndarray]:
    """(T, H, W, 3) uint8 frames of every wanted clip; LookupError names what cannot be found."""
    urls = {shard_name(url): url for url in list_shards(input_spec, storage_options).urls}
    by_shard: dict[str, set[tuple[str, int]]] = defaultdict(set)
    for shard, key, clip in wanted:
        by_shard[shard].add((key, clip))
    missing_shards = sorted(set(by_shard) - set(urls))
    if missing_shards:
        raise LookupError(f"shard(s) {missing_shards} are not in the input {input_spec!r}; pass --input with the "
                          "shards the job read")
    found: dict[ClipId, np.ndarray] = {}
    problems: list[str] = []
    for shard, clips in by_shard.items():
        remaining, keys = set(clips), {key for key, _ in clips}
        for sample in iter_samples(urls[shard], config, storage_options):
            if isinstance(sample, ErrorRecord):
                if sample.key in keys or sample.key is None:
                    problems.append(f"{sample.key or shard}: {sample.error_type}: {sample.message}")
                continue
            if sample.key not in keys:
                continue
            for item in sample_clips(sample, config):
                if isinstance(item, ErrorRecord):
                    problems.append(f"{item.key}: {item.error_type}: {item.message}")
                elif isinstance(item, Clip) and (item.info.key, item.info.clip_index) in remaining:
                    found[(shard, item.info.key, item.info.clip_index)] = item.frames
                    remaining.discard((item.info.key, item.info.clip_index))
            if not remaining:
                break
    missing = [clip for clip in wanted if clip not in found]
    if missing:
        detail = f" ({'; '.join(problems[:3])})" if problems else ""
        raise LookupError(f"{len(missing)} clip(s) not found in the input {input_spec!r}, e.g. "
                          f"{missing[0][1]!r} clip {missing[0][2]} of shard {missing[0][0]}{detail}")
    return found
