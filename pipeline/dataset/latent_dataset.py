"""``LatentDataset``: a job's committed latents, streamed into a PyTorch training loop."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ..dtypes import DTYPES as OUTPUT_DTYPES
from ..output.schema import LATENTS_SCHEMA
from ..output.shard_writer import ROW_GROUP_ROWS
from .batching import bucketed
from .plan import Block, epoch_order, make_blocks, share_of, windows
from .shard_files import ShardFiles
from .source import open_output
from .tensors import Payloads, group_rows, latent_shapes
from .transform import LatentTransform, build_transform

# Row fields a sample carries besides ``latent``: everything but the tensor encoding.
ROW_FIELDS = tuple(f.name for f in LATENTS_SCHEMA if f.name not in ("latent", "logvar", "latent_dtype"))


class LatentDataset(IterableDataset):
    """The committed rows of an output folder (local path or fsspec URL such as s3://bucket/latents).

    Each sample is a dict: ``latent`` (a (C, t, h, w) tensor), ``key``, ``caption`` and the
    row's other fields (``fields=`` picks fewer, which reads less). With ``batch_size`` the
    dataset yields batches itself (use ``DataLoader(dataset, batch_size=None)``): samples of
    one latent shape stacked into (B, C, t, h, w), numbers as tensors, text as lists.

    Options:
        dtype             output dtype: None keeps the stored one, or float32/float16/bfloat16
        normalize         "raw" (default), "model" ((z - shift) * scale of the model config) or
                          "measured" ((z - mean) / std measured by the job); see ``denormalize``
        sample_posterior  z = mean + exp(logvar / 2) * noise (needs an output with --store moments)
        shuffle, seed     a seeded order per epoch: blocks of rows permuted globally, rows of
                          ``shuffle_blocks`` blocks mixed together (memory: that many blocks per
                          worker, 4 x 256 rows x 295 KB = 300 MB for 16x9x32x32 bfloat16);
                          call ``set_epoch(n)`` before each epoch
        rank, world_size  this process's share (default: torch.distributed's, when initialised)
        batch_size, drop_last   bucketed batches; ``drop_last`` drops each shape's partial batch
        block_rows        rows read (and shuffled) as one unit; default one Parquet row group

    Every epoch, the rows are split into ``world_size`` x DataLoader-workers contiguous shares of
    the epoch's order, equal to within one row: together they hold every committed row exactly once. Noise
    for ``sample_posterior`` is seeded by (seed, epoch, block): the same run setup gives the same draws.
    The set of shards is fixed when the dataset is created: shards committed later need a new one.
    """

    def __init__(self, output_url: str, storage_options: dict[str, Any] | None = None, *,
                 dtype: torch.dtype | str | None = None, normalize: str = "raw", sample_posterior: bool = False,
                 shuffle: bool = False, seed: int = 0, shuffle_blocks: int = 4, batch_size: int | None = None,
                 drop_last: bool = False, fields: Sequence[str] | None = None, rank: int | None = None,
                 world_size: int | None = None, block_rows: int = ROW_GROUP_ROWS) -> None:
        super().__init__()
        self.dtype = _output_dtype(dtype)
        self.fields = _fields(fields)
        self.shuffle, self.seed = bool(shuffle), _whole("seed", seed, minimum=0)
        self.shuffle_blocks = _whole("shuffle_blocks", shuffle_blocks, minimum=1)
        self.block_rows = _whole("block_rows", block_rows, minimum=1)
        self.batch_size = None if batch_size is None else _whole("batch_size", batch_size, minimum=1)
        if drop_last and self.batch_size is None:
            raise ValueError("drop_last=True needs batch_size (it drops each shape's last, partial batch)")
        self.drop_last = bool(drop_last)
        self.rank, self.world_size = _rank_and_world_size(rank, world_size)
        self.output = open_output(output_url, storage_options)
        metadata = self.output.file_metadata
        self.stored = metadata.get("stored", "mean")
        self.transform: LatentTransform = build_transform(
            normalize, self.dtype, bool(sample_posterior), stored=self.stored, scale=metadata.get("scale"),
            shift=metadata.get("shift"), mean=self.output.stats.mean, std=self.output.stats.std,
            channels=metadata.get("latent_channels"))
        self.normalize = normalize
        self.blocks = make_blocks([shard.rows for shard in self.output.shards], self.block_rows)
        self.epoch = 0

    # -- facts ---------------------------------------------------------------------------
    @property
    def num_rows(self) -> int:
        """Committed rows in all shards (all ranks together)."""
        return self.output.num_rows

    @property
    def shards(self) -> list[str]:
        return [shard.name for shard in self.output.shards]

    def __len__(self) -> int:
        """Samples this rank yields per epoch (all its DataLoader workers together)."""
        if self.batch_size is not None:
            raise TypeError("with batch_size the number of batches depends on the latent shapes; "
                            "see num_rows for the number of samples")
        total = self.num_rows
        return total * (self.rank + 1) // self.world_size - total * self.rank // self.world_size

    def __repr__(self) -> str:
        return (f"LatentDataset({self.output.url!r}, rows={self.num_rows}, shards={len(self.output.shards)}, "
                f"stored={self.stored!r}, normalize={self.normalize!r}, rank={self.rank}/{self.world_size})")

    def denormalize(self, latents: torch.Tensor) -> torch.Tensor:
        """Undo ``normalize`` (channels at dim -4): what the WF-VAE decoder takes."""
        return self.transform.invert(latents)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch's order (with shuffle) and noise. DataLoader workers copy the dataset
        when an epoch starts, so call it before iterating (not with persistent_workers=True)."""
        self.epoch = _whole("epoch", epoch, minimum=0)

    # -- iteration -----------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        slot, slots = self.rank * workers + worker, self.world_size * workers
        share = share_of(epoch_order(self.blocks, self.shuffle, self.seed, self.epoch), slot, slots)
        samples = self._samples(share, slot)
        return samples if self.batch_size is None else bucketed(samples, self.batch_size, self.drop_last)

    def _samples(self, share: list[Block], slot: int) -> Iterator[dict[str, Any]]:
        files = ShardFiles(self.output)
        order = np.random.default_rng([self.seed, self.epoch, slot])
        try:
            for window in windows(share, self.shuffle_blocks if self.shuffle else 1):
                samples = [sample for block in window for sample in self._read_block(files, block)]
                if self.shuffle:
                    samples = [samples[i] for i in order.permutation(len(samples))]
                yield from samples
        finally:
            files.close()

    def _read_block(self, files: ShardFiles, block: Block) -> list[dict[str, Any]]:
        sample = self.transform.sample
        columns = ["latent", "latent_shape", "latent_dtype", *(["logvar"] if sample else []),
                   *(f for f in self.fields if f != "latent_shape")]
        table = files.read(block, columns)
        groups = group_rows(table.column("latent_dtype").to_pylist(), latent_shapes(table.column("latent_shape")))
        means = Payloads(table.column("latent"), "latent")
        logvars = Payloads(table.column("logvar"), "logvar") if sample else None
        generator = torch.Generator().manual_seed(self._noise_seed(block)) if sample else None
        latents: list[torch.Tensor | None] = [None] * table.num_rows
        for key, rows in groups.items():
            out = self.transform(means.group(key, rows), logvars.group(key, rows) if logvars else None, generator)
            for row, latent in zip(rows.tolist(), out):
                latents[row] = latent
        values = [table.column(name).to_pylist() for name in self.fields]
        return [{"latent": latent, **dict(zip(self.fields, row))} for latent, row in zip(latents, zip(*values))] \
            if values else [{"latent": latent} for latent in latents]

    def _noise_seed(self, block: Block) -> int:
        state = np.random.SeedSequence([self.seed, self.epoch, block.shard, block.start]).generate_state(2)
        return int(state[0]) << 32 | int(state[1])


def _output_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    if dtype is None:
        return None
    if isinstance(dtype, str) and dtype in OUTPUT_DTYPES:
        return OUTPUT_DTYPES[dtype]
    if isinstance(dtype, torch.dtype) and dtype in OUTPUT_DTYPES.values():
        return dtype
    raise ValueError(f"dtype must be None (as stored) or one of {sorted(OUTPUT_DTYPES)}, got {dtype!r}")


def _fields(fields: Sequence[str] | None) -> tuple[str, ...]:
    if fields is None:
        return ROW_FIELDS
    if isinstance(fields, str):
        raise ValueError(f"fields must be a list of field names, e.g. ['key', 'caption'], got {fields!r}")
    unknown = sorted(set(fields) - set(ROW_FIELDS))
    if unknown:
        raise ValueError(f"unknown fields {unknown}; a sample can carry {list(ROW_FIELDS)} (latent always)")
    return tuple(dict.fromkeys(fields))


def _whole(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _rank_and_world_size(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is None and world_size is None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1
    if rank is None or world_size is None:
        raise ValueError("give both rank and world_size, or neither (then torch.distributed's are used)")
    world_size = _whole("world_size", world_size, minimum=1)
    rank = _whole("rank", rank, minimum=0)
    if rank >= world_size:
        raise ValueError(f"rank must be below world_size ({world_size}), got {rank}")
    return rank, world_size
