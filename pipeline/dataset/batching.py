"""Bucketed batches: clips whose latents share a shape, stacked into one tensor.

Training on several resolutions or lengths needs batches of one shape; padding would
waste compute and change the loss. Each shape has its own bucket; a full bucket is a
batch, and what is left at the end of an epoch comes out as smaller batches unless
``drop_last``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Tensors are stacked, numbers become a tensor, anything else (text, lists, None) a list."""
    batch: dict[str, Any] = {}
    for name in samples[0]:
        values = [sample[name] for sample in samples]
        if all(isinstance(v, torch.Tensor) for v in values):
            batch[name] = torch.stack(values)
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            batch[name] = torch.tensor(values, dtype=torch.int64)
        elif all(isinstance(v, float) for v in values):
            batch[name] = torch.tensor(values, dtype=torch.float32)
        else:
            batch[name] = values
    return batch


def bucketed(samples: Iterable[dict[str, Any]], batch_size: int, drop_last: bool) -> Iterator[dict[str, Any]]:
    buckets: dict[tuple[int, ...], list[dict[str, Any]]] = {}
    for sample in samples:
        bucket = buckets.setdefault(tuple(sample["latent"].shape), [])
        bucket.append(sample)
        if len(bucket) == batch_size:
            yield collate(bucket)
            bucket.clear()
    if not drop_last:
        for bucket in buckets.values():
            if bucket:
                yield collate(bucket)
