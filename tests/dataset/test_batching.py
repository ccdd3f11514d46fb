"""Bucketed batches: one latent shape per batch, partial buckets flushed or dropped."""

from __future__ import annotations

from collections import Counter

import torch

from pipeline.dataset import LatentDataset
from tests.support.outputs import ids, read_rows


def test_batches_hold_one_shape_and_every_row(moments):
    batches = list(LatentDataset(str(moments.out), batch_size=4, shuffle=True, block_rows=4))
    seen = []
    for batch in batches:
        latent = batch["latent"]
        assert latent.dim() == 5 and 1 <= latent.shape[0] <= 4 and latent.dtype == torch.bfloat16
        assert all(list(shape) == list(latent.shape[1:]) for shape in batch["latent_shape"])
        assert batch["clip"].dtype == torch.int64 and batch["fps"].dtype == torch.float32
        assert isinstance(batch["key"], list) and isinstance(batch["caption"][0], str)
        seen += list(zip(batch["key"], batch["clip"].tolist()))
    assert sorted(seen) == sorted(ids(read_rows(moments.out, shards=moments.committed)))
    assert sum(b["latent"].shape[0] < 4 for b in batches) <= 2  # one partial batch per shape at most


def test_drop_last_drops_each_shapes_partial_batch(moments):
    per_shape = Counter(tuple(r["latent_shape"]) for r in read_rows(moments.out, shards=moments.committed))
    batches = list(LatentDataset(str(moments.out), batch_size=4, drop_last=True))
    assert all(b["latent"].shape[0] == 4 for b in batches)
    assert Counter(tuple(b["latent"].shape[1:]) for b in batches) == {s: n // 4 for s, n in per_shape.items()}


def test_batched_values_equal_the_samples(moments):
    samples = {(s["key"], s["clip"]): s["latent"] for s in LatentDataset(str(moments.out), dtype="float32")}
    for batch in LatentDataset(str(moments.out), dtype="float32", batch_size=3):
        for key, clip, latent in zip(batch["key"], batch["clip"].tolist(), batch["latent"]):
            assert torch.equal(latent, samples[(key, clip)])
