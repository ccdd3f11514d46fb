"""Rows of a shard to samples: the latent (transformed), the fields asked for, and the caption's embedding.

Only the rows asked for become samples, and only the columns needed are read: the text file is
opened only when ``text_embedding`` or ``text_length`` is asked for. A row's posterior noise comes
from its own seed (seed, epoch, shard name, row), so it is the same however the epoch is read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from .plan import Block
from .shard_files import ShardFiles
from .source import TextEmbeddings
from .tensors import TORCH_DTYPES, Payloads, latent_shapes, single_array
from .transform import LatentTransform

DEFAULTS = {"media_type": "video"}  # what a row of an older output (without the column) is
TEXT_FIELDS = ("text_embedding", "text_length")


@dataclass(frozen=True)
class Item:
    """A sample with what a pass needs to know of it besides the sample itself."""

    position: int  # in the epoch's order
    media_type: str
    sample: dict[str, Any]


class SampleReader:
    def __init__(self, *, fields: Sequence[str], transform: LatentTransform, text: TextEmbeddings | None,
                 seed: int) -> None:
        self.row_fields = [f for f in fields if f not in TEXT_FIELDS]
        self.text_fields = [f for f in fields if f in TEXT_FIELDS]
        self.transform, self.text, self.seed = transform, text, seed
        self.text_dtype = None if text is None else (transform.dtype or TORCH_DTYPES[text.dtype])

    def window(self, files: ShardFiles, blocks: list[Block], order: np.ndarray, positions: np.ndarray,
               epoch: int) -> list[Item]:
        """The window's rows ``order`` (numbered through its blocks), as items in that order."""
        starts = np.cumsum([0] + [block.rows for block in blocks])
        block_of = np.searchsorted(starts, order, side="right") - 1
        items: list[Item | None] = [None] * len(order)
        for index in np.unique(block_of).tolist():
            mine = np.flatnonzero(block_of == index)
            rows = blocks[index].start + order[mine] - starts[index]
            sort = np.argsort(rows, kind="stable")
            for at, (media_type, sample) in zip(mine[sort].tolist(), self.rows(files, blocks[index].shard,
                                                                                rows[sort], epoch)):
                items[at] = Item(int(positions[at]), media_type, sample)
        return items  # type: ignore[return-value]

    def rows(self, files: ShardFiles, shard: int, rows: np.ndarray, epoch: int) -> list[tuple[str, dict[str, Any]]]:
        """(media type, sample) of the shard's ``rows`` (sorted), in that order."""
        present = files.columns("latents", shard)
        sample_posterior = self.transform.sample
        joined = bool(self.text_fields) and "text_row" in present
        wanted = ["latent", "latent_shape", "latent_dtype", *(["logvar"] if sample_posterior else []),
                  *(f for f in self.row_fields if f in present and f != "latent_shape"),
                  *(["media_type"] if "media_type" in present and "media_type" not in self.row_fields else []),
                  *(["key"] if joined and "key" not in self.row_fields else []), *(["text_row"] if joined else [])]
        table = files.read("latents", shard, rows, wanted)
        n = table.num_rows
        shapes = latent_shapes(table.column("latent_shape"))
        dtypes = table.column("latent_dtype").to_pylist()
        means = Payloads(table.column("latent"), "latent").tensors(dtypes, shapes)
        logvars = Payloads(table.column("logvar"), "logvar").tensors(dtypes, shapes) if sample_posterior else None
        seeds = row_seeds(self.seed, epoch, files.output.shards[shard].name, rows) if sample_posterior else [None] * n
        latents = [self.transform(mean, logvars[i] if logvars else None, seeds[i]) for i, mean in enumerate(means)]
        values = {name: table.column(name).to_pylist() if name in present else [DEFAULTS.get(name)] * n
                  for name in self.row_fields}
        media = values["media_type"] if "media_type" in values else (
            table.column("media_type").to_pylist() if "media_type" in present else ["video"] * n)
        columns = [values[name] for name in self.row_fields]
        rows_values = zip(*columns) if columns else ((),) * n
        samples = [{"latent": latent, **dict(zip(self.row_fields, values))}
                   for latent, values in zip(latents, rows_values)]
        if self.text_fields:
            text_rows = _text_rows(table.column("text_row")) if joined else np.full(n, -1, dtype=np.int64)
            keys = table.column("key").to_pylist() if joined else []
            self._join_text(files, shard, samples, text_rows, keys)
        return list(zip(media, samples))

    def _join_text(self, files: ShardFiles, shard: int, samples: list[dict[str, Any]], text_rows: np.ndarray,
                   keys: list[str]) -> None:
        """Each sample's caption embedding [L, D] and length; a sample without one gets [0, D] and 0."""
        dim, dtype = self.text.dim, self.text_dtype
        wanted = np.unique(text_rows[text_rows >= 0])
        lengths, text_keys, embeddings = np.zeros(0, dtype=np.int64), [], None
        if len(wanted):
            with_embedding = "text_embedding" in self.text_fields
            table = files.read("text", shard, wanted, ["key", "text_length",
                                                       *(["text_embedding"] if with_embedding else [])])
            lengths = table.column("text_length").to_numpy()
            text_keys = table.column("key").to_pylist()
            embeddings = Payloads(table.column("text_embedding"), "text_embedding").tensors(
                [self.text.dtype] * len(wanted), np.stack([lengths, np.full(len(wanted), dim)], axis=1)) \
                if with_embedding else None
        handed_out: set[int] = set()
        for i, sample in enumerate(samples):
            row = int(text_rows[i])
            if row < 0:
                embedding, length = torch.zeros(0, dim, dtype=dtype), 0
            else:
                j = int(np.searchsorted(wanted, row))
                if text_keys[j] != keys[i]:
                    raise RuntimeError(f"shard {files.output.shards[shard].name}: the latent row of {keys[i]!r} points "
                                       f"to text row {row}, which is {text_keys[j]!r}: the text file does not belong "
                                       "to this latents file (rewritten after it was committed?)")
                length = int(lengths[j])
                embedding = None
                if embeddings is not None:
                    embedding = embeddings[j]
                    if embedding.dtype != dtype:
                        embedding = embedding.to(dtype)
                    elif j in handed_out:  # clips of one video share a row: their tensors must not alias
                        embedding = embedding.clone()
                    handed_out.add(j)
            if "text_embedding" in self.text_fields:
                sample["text_embedding"] = embedding
            if "text_length" in self.text_fields:
                sample["text_length"] = length


def _text_rows(column: pa.ChunkedArray) -> np.ndarray:
    """The ``text_row`` column with -1 for null (no caption)."""
    array = single_array(column)
    return array.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


def row_seeds(seed: int, epoch: int, shard: str, rows: np.ndarray) -> list[int]:
    """One 63-bit seed per row from (seed, epoch, shard name, row): splitmix64 of the row over a base."""
    name = int.from_bytes(hashlib.blake2b(shard.encode(), digest_size=8).digest(), "little")
    base = np.random.SeedSequence([seed, epoch, name]).generate_state(1, dtype=np.uint64)[0]
    x = rows.astype(np.uint64) + base
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(1)).tolist()
