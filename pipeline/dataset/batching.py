"""Bucketed batches: samples whose latents share a shape (and, unless mixed, a media type), stacked.

Training on several resolutions or lengths needs batches of one shape; padding latents would
waste compute and change the loss. Each (media type, shape) has its own bucket, so images and
videos never share a batch unless ``mix_media`` (then images and one-latent-frame videos of one
shape do). A full bucket is a batch; what is left at the end of an epoch comes out as smaller
batches, bucket by bucket in the order the buckets were made, unless ``drop_last``.

Text embeddings of one batch are padded with zeros to the batch's longest, with ``text_mask``
(bool [B, Lmax]) true on real tokens; a sample without a caption has text_length 0, so its row
is all padding and its mask all false.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch

from .resume_state import BucketKey

FLOAT_FIELDS = ("fps", "source_fps")  # null for images: NaN in a batch


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Tensors are stacked, numbers become a tensor, anything else (text, lists, None) a list;
    ``text_embedding`` is padded, with ``text_mask``. Usable as a DataLoader ``collate_fn``."""
    batch: dict[str, Any] = {}
    for name in samples[0]:
        values = [sample[name] for sample in samples]
        if name == "text_embedding":
            batch[name], batch["text_mask"] = pad_text(values)
        elif all(isinstance(v, torch.Tensor) for v in values):
            batch[name] = torch.stack(values)
        elif name in FLOAT_FIELDS:
            batch[name] = torch.tensor([math.nan if v is None else v for v in values], dtype=torch.float32)
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            batch[name] = torch.tensor(values, dtype=torch.int64)
        elif all(isinstance(v, float) for v in values):
            batch[name] = torch.tensor(values, dtype=torch.float32)
        else:
            batch[name] = values
    return batch


def pad_text(embeddings: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """[L_i, D] tensors -> ([B, Lmax, D] zero-padded, [B, Lmax] bool mask of real tokens). Written once:
    each row copied, only the padding zeroed (a zero-filled buffer would be written twice)."""
    lengths = torch.tensor([e.shape[0] for e in embeddings], dtype=torch.int64)
    longest = int(lengths.max())
    padded = torch.empty(len(embeddings), longest, embeddings[0].shape[1], dtype=embeddings[0].dtype)
    for row, embedding in zip(padded, embeddings):
        row[:embedding.shape[0]].copy_(embedding)
        row[embedding.shape[0]:].zero_()
    return padded, torch.arange(longest) < lengths[:, None]


class Bucketer:
    """The buckets of one reader's pass, knowing which epoch positions each holds (for its resume state)."""

    def __init__(self, batch_size: int, drop_last: bool, mix_media: bool) -> None:
        self.batch_size, self.drop_last, self.mix_media = batch_size, drop_last, mix_media
        self.buckets: dict[BucketKey, list[tuple[int, dict[str, Any]]]] = {}

    def key(self, media_type: str, sample: dict[str, Any]) -> BucketKey:
        return (None if self.mix_media else media_type, *sample["latent"].shape)

    def make(self, key: BucketKey) -> None:
        """A bucket, empty for now (restoring keeps the order buckets were made in)."""
        self.buckets.setdefault(key, [])

    def add(self, key: BucketKey, position: int, sample: dict[str, Any]) -> dict[str, Any] | None:
        """The batch this sample completes, if it does."""
        bucket = self.buckets.setdefault(key, [])
        bucket.append((position, sample))
        if len(bucket) < self.batch_size:
            return None
        samples = [s for _, s in bucket]
        bucket.clear()
        return collate(samples)

    def rest(self) -> Iterator[dict[str, Any]]:
        """The partial batches at the end of the pass (none with ``drop_last``)."""
        if self.drop_last:
            return
        for bucket in self.buckets.values():
            if bucket:
                samples = [s for _, s in bucket]
                bucket.clear()  # before yielding: the state then says these were delivered
                yield collate(samples)

    def pending(self) -> list[tuple[BucketKey, list[int]]]:
        return [(key, [position for position, _ in bucket]) for key, bucket in self.buckets.items()]
