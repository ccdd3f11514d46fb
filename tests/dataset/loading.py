"""Reading a LatentDataset through torchdata's StatefulDataLoader (real worker processes), for the resume tests."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torchdata.stateful_dataloader import StatefulDataLoader

from pipeline.dataset import collate


def stateful_loader(dataset, workers: int, batch_size: int | None = None) -> StatefulDataLoader:
    """``batch_size``: the loader's own batches (of samples, through ``collate``); None for the dataset's items."""
    with warnings.catch_warnings():  # torchdata 0.11 calls a deprecated torch function when made
        warnings.simplefilter("ignore", UserWarning)
        return StatefulDataLoader(dataset, batch_size=batch_size, num_workers=workers,
                                  collate_fn=collate if batch_size else None)


def ids(item: dict[str, Any]) -> list[tuple[str, int]]:
    """(key, clip) of a sample, or of each sample of a batch."""
    if isinstance(item["key"], str):
        return [(item["key"], int(item["clip"]))]
    return list(zip(item["key"], torch.as_tensor(item["clip"]).tolist()))


def flat(items: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [i for item in items for i in ids(item)]


def take(loader: StatefulDataLoader, count: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The first ``count`` items, and the loader's state after them."""
    iterator = iter(loader)
    items = [next(iterator) for _ in range(count)]
    state = loader.state_dict()
    del iterator
    return items, state
