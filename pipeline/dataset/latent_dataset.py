"""``LatentDataset``: a job's committed latents, streamed into a PyTorch training loop, resumable at the sample."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ..dtypes import DTYPES as OUTPUT_DTYPES
from ..output.schema import LATENTS_SCHEMA
from ..output.shard_writer import ROW_GROUP_ROWS
from .batching import Bucketer
from .epoch_pass import EpochPass
from .plan import EpochOrder, make_blocks, whole
from .resume_state import ORDER_SETTINGS, Buckets, Reader, ReaderState, combine
from .samples import TEXT_FIELDS, SampleReader
from .shard_set import ShardSet, decode_names, digest
from .source import open_output
from .transform import LatentTransform, build_transform

# Row fields a sample carries besides ``latent``: everything but the tensor encoding and the text file's row
# number (the caption's embedding comes as ``text_embedding``); ``media_type`` is 'video' in older outputs.
ROW_FIELDS = tuple(dict.fromkeys([*(f.name for f in LATENTS_SCHEMA
                                    if f.name not in ("latent", "logvar", "latent_dtype", "text_row")), "media_type"]))


class LatentDataset(IterableDataset):
    """The committed rows of an output folder (local path or fsspec URL such as s3://bucket/latents).

    Each sample is a dict: ``latent`` (a (C, t, h, w) tensor), ``key``, ``caption``, ``media_type``
    ('image' or 'video') and the row's other fields; with an output of a job that had a text encoder,
    ``text_embedding`` ([L, D], the caption's embedding) and ``text_length`` (L). A sample without a
    caption gets a [0, D] embedding and text_length 0 (in a batch: zeros, its ``text_mask`` row all
    false; what "no caption" means is the model's choice). ``fields=`` picks fewer, which reads less:
    without the text fields the text files are never opened. With ``batch_size`` the dataset yields
    batches itself (use ``DataLoader(dataset, batch_size=None)``): see batching.py.

    Options:
        dtype             output dtype of latents and text embeddings: None keeps the stored ones,
                          or float32/float16/bfloat16
        normalize         "raw" (default), "model" ((z - shift) * scale of the model config) or
                          "measured" ((z - mean) / std measured by the job); see ``denormalize``
        sample_posterior  z = mean + exp(logvar / 2) * noise (needs an output with --store moments); a row's
                          noise is seeded by (seed, epoch, shard, row)
        shuffle, seed     a seeded order per epoch: blocks of rows permuted globally, rows of
                          ``shuffle_blocks`` consecutive blocks mixed together (memory: that many blocks per
                          worker, 4 x 256 x 295 KB = 300 MB for 16x9x32x32 bfloat16, plus 1 GB with
                          120 x 4096 bfloat16 text embeddings); call ``set_epoch(n)`` before each epoch
        rank, world_size  this process's share (default: torch.distributed's, when initialised)
        batch_size, drop_last   bucketed batches; ``drop_last`` drops each bucket's partial batch
        mix_media         let images and videos of one latent shape share a batch (default: never)
        block_rows        rows read (and shuffled) as one unit; default one Parquet row group

    Every epoch has one order of all its rows, whoever reads it; ``world_size`` x DataLoader-workers
    readers each take a contiguous share of it, equal to within one row: together every committed row
    exactly once.

    Resuming: ``state_dict()`` / ``load_state_dict()`` (what torchdata's ``StatefulDataLoader`` calls
    in each worker) save and restore where a reader is in its share, so a run restarted from a saved
    state delivers the rest of the epoch, each remaining row once, in the order the uninterrupted run
    would have, with the same posterior noise. Nothing is replayed: no row already delivered becomes a
    sample again (only the row groups a reader stopped in are read again, for the rows still due in
    them). Keep StatefulDataLoader's ``snapshot_every_n_steps=1`` (its default; a state is a few
    numbers): with more, the loader itself replays the batches since its last snapshot. A state is
    for its epoch: call ``set_epoch`` with that epoch (or none) before the loader resumes it. See
    resume_state.py for the state's format.
      - Another number of ranks or workers: give every reader's state of one checkpoint to
        ``LatentDataset.combine_states``, load the result into the new dataset (before making the
        loader), and use a fresh loader. The epoch's order stays; the rows no reader had delivered are
        split anew among the new readers, each row once.
      - Shards committed after the dataset was made: a dataset sees the shards committed when it was
        made. A resumed epoch reads the shards it started with (the state names them), though the
        output may hold more by then; the new ones come with the next epoch.
    """

    def __init__(self, output_url: str, storage_options: dict[str, Any] | None = None, *,
                 dtype: torch.dtype | str | None = None, normalize: str = "raw", sample_posterior: bool = False,
                 shuffle: bool = False, seed: int = 0, shuffle_blocks: int = 4, batch_size: int | None = None,
                 drop_last: bool = False, mix_media: bool = False, fields: Sequence[str] | None = None,
                 rank: int | None = None, world_size: int | None = None, block_rows: int = ROW_GROUP_ROWS) -> None:
        super().__init__()
        self.dtype = _output_dtype(dtype)
        self.shuffle, self.seed = bool(shuffle), _whole("seed", seed, minimum=0)
        self.shuffle_blocks = _whole("shuffle_blocks", shuffle_blocks, minimum=1)
        self.block_rows = _whole("block_rows", block_rows, minimum=1)
        self.batch_size = None if batch_size is None else _whole("batch_size", batch_size, minimum=1)
        if drop_last and self.batch_size is None:
            raise ValueError("drop_last=True needs batch_size (it drops each bucket's last, partial batch)")
        if mix_media and self.batch_size is None:
            raise ValueError("mix_media=True needs batch_size (it lets images and videos share a batch)")
        self.drop_last, self.mix_media = bool(drop_last), bool(mix_media)
        self.rank, self.world_size = _rank_and_world_size(rank, world_size)
        self.output = open_output(output_url, storage_options)
        self.fields = _fields(fields, has_text=self.output.text is not None)
        metadata = self.output.file_metadata
        self.stored = metadata.get("stored", "mean")
        self.transform: LatentTransform = build_transform(
            normalize, self.dtype, bool(sample_posterior), stored=self.stored, scale=metadata.get("scale"),
            shift=metadata.get("shift"), mean=self.output.stats.mean, std=self.output.stats.std,
            channels=metadata.get("latent_channels"))
        self.normalize = normalize
        self.epoch = 0
        self._epoch_set = False  # set_epoch was called: a state of another epoch is then a mistake
        self._resume: ReaderState | None = None  # loaded, for the next pass over its epoch
        self._pass: EpochPass | None = None  # the latest pass in this process
        self._shard_set: ShardSet | None = None
        self._order: tuple[tuple[int, tuple[int, ...]], EpochOrder] | None = None

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
        when an epoch starts, so call it before iterating (not with persistent_workers=True). A loaded
        state is kept for its own epoch and dropped for any other."""
        self.epoch, self._epoch_set = _whole("epoch", epoch, minimum=0), True
        if self._resume is not None and self._resume.epoch != self.epoch:
            self._resume = None
        if self._pass is not None and self._pass.start.epoch != self.epoch:
            self._pass = None

    # -- resuming ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Where this reader is: in its latest pass, or at the start of the loaded state or the epoch."""
        if self._pass is not None:
            return self._pass.state().to_dict()
        if self._resume is not None and self._resume.reader is not None:
            return self._resume.to_dict()
        if self._resume is not None:  # a combined state: this reader has taken nothing of its share yet
            return replace(self._fresh(self._reader()), shards=self._resume.shards, plan=self._resume.plan).to_dict()
        return self._fresh(self._reader()).to_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume the state's epoch where it stood at the next pass (``iter``). A state of one reader is
        for that reader (StatefulDataLoader gives each worker its own); one from ``combine_states``, for any.
        A state saved after its epoch's last item, loaded once set_epoch chose another epoch, is ignored."""
        loaded = ReaderState.from_dict(state)
        if self._epoch_set and loaded.epoch != self.epoch:
            if loaded.finished:  # the loop has moved on to the next epoch (StatefulDataLoader loads it all the same)
                return
            raise ValueError(f"this state resumes epoch {loaded.epoch}, but set_epoch({self.epoch}) was called: call "
                             f"set_epoch({loaded.epoch}) to finish that epoch first (or load no state)")
        mine = self._order_settings()
        if loaded.order != mine:
            differ = {k: (loaded.order.get(k), mine[k]) for k in mine if loaded.order.get(k) != mine[k]}
            raise ValueError(f"the state's epoch was ordered with other settings ({differ}, saved vs this "
                             "dataset): open the dataset with the saved ones to resume that epoch")
        self._epoch_shards(loaded.shards)  # checks that this output still holds them
        pending = loaded.buckets is not None and any(positions for _, positions in loaded.buckets.pending)
        if pending and (loaded.buckets.batch_size, loaded.buckets.mix_media) != (self.batch_size, self.mix_media):
            raise ValueError(f"the state holds rows in buckets of batch_size={loaded.buckets.batch_size}, "
                             f"mix_media={loaded.buckets.mix_media}, this dataset makes batch_size={self.batch_size}, "
                             f"mix_media={self.mix_media}: keep them, or pass the state through "
                             "LatentDataset.combine_states, which puts those rows back into the epoch's plan")
        self.epoch, self._resume, self._pass = loaded.epoch, loaded, None

    @staticmethod
    def combine_states(states: Iterable[dict[str, Any]]) -> dict[str, Any]:
        """One state from every reader's state of one checkpoint (dataset states, or the state_dict()s of
        each rank's StatefulDataLoader), to resume with another number of ranks or DataLoader workers."""
        return combine(ReaderState.from_dict(state) for state in _dataset_states(states)).to_dict()

    # -- iteration -----------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict[str, Any]]:
        reader = self._reader()
        start, self._resume = self._resume, None
        if start is None or start.epoch != self.epoch:
            start = self._fresh(reader)
        elif start.reader is not None and start.reader != reader:
            raise ValueError(f"this state is the one of {start.reader}, but it is being resumed by {reader}: "
                             "a reader's state resumes that reader (StatefulDataLoader.load_state_dict does so); "
                             "with other ranks or workers, load LatentDataset.combine_states(every reader's state)")
        elif start.reader is None:  # a combined state: this reader's share of its plan, from the start
            start = replace(start, reader=reader)
        samples = SampleReader(fields=self.fields, transform=self.transform, text=self.output.text, seed=self.seed)
        bucketer = None if self.batch_size is None else Bucketer(self.batch_size, self.drop_last, self.mix_media)
        self._pass = EpochPass(self.output, self._epoch_order(start), samples, start, reader, bucketer)
        return iter(self._pass)

    def _reader(self) -> Reader:
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        return Reader(self.rank, self.world_size, worker, workers)

    def _fresh(self, reader: Reader) -> ReaderState:
        shards = self._current_shards()
        buckets = None if self.batch_size is None else Buckets(self.batch_size, self.mix_media, [])
        return ReaderState(self.epoch, self._order_settings(), shards, whole(shards.rows), reader, 0, buckets)

    def _order_settings(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ORDER_SETTINGS}

    def _current_shards(self) -> ShardSet:
        if self._shard_set is None:
            self._shard_set = ShardSet.of(self.shards, [shard.rows for shard in self.output.shards])
        return self._shard_set

    def _epoch_shards(self, saved: ShardSet) -> tuple[int, ...]:
        """Indices (into this dataset's shards) of the shards a saved epoch was planned over."""
        current = self._current_shards()
        if saved.count == current.count and saved.digest == current.digest:
            return tuple(range(current.count))
        index = {name: i for i, name in enumerate(self.shards)}
        names = sorted(decode_names(saved.runs))
        gone = [name for name in names if name not in index]
        if gone:
            raise ValueError(f"the state's epoch read {saved.count} shards, {len(gone)} of which this output no "
                             f"longer has committed ({gone[:3]}...): that epoch cannot be resumed exactly; "
                             "start it again (set_epoch) or the next one")
        chosen = [index[name] for name in names]
        if digest(names, [self.output.shards[i].rows for i in chosen]) != saved.digest:
            raise ValueError(f"some of the {saved.count} shards the state's epoch read hold other rows now "
                             "(re-encoded since?): that epoch cannot be resumed exactly; start it again (set_epoch)")
        return tuple(chosen)

    def _epoch_order(self, start: ReaderState) -> EpochOrder:
        shards = self._epoch_shards(start.shards)
        key = (start.epoch, shards)
        if self._order is None or self._order[0] != key:
            blocks = make_blocks([self.output.shards[i].rows for i in shards], self.block_rows, shards)
            self._order = key, EpochOrder(blocks, shuffle=self.shuffle, seed=self.seed, epoch=start.epoch,
                                          window_blocks=self.shuffle_blocks)
        return self._order[1]

    def __getstate__(self) -> dict[str, Any]:
        """Workers get the settings and any loaded state, not this process's pass."""
        return {**self.__dict__, "_pass": None}


def _dataset_states(states: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Dataset states, found inside StatefulDataLoader state_dicts (with or without workers) or given as such."""
    for state in states:
        if isinstance(state, dict) and "_snapshot" in state:  # StatefulDataLoader with workers
            for worker in state["_snapshot"]["_worker_snapshots"].values():
                yield worker["dataset_state"]
        elif isinstance(state, dict) and "dataset_state" in state and "format" not in state:  # without workers
            yield state["dataset_state"]
        else:
            yield state


def _output_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    if dtype is None:
        return None
    if isinstance(dtype, str) and dtype in OUTPUT_DTYPES:
        return OUTPUT_DTYPES[dtype]
    if isinstance(dtype, torch.dtype) and dtype in OUTPUT_DTYPES.values():
        return dtype
    raise ValueError(f"dtype must be None (as stored) or one of {sorted(OUTPUT_DTYPES)}, got {dtype!r}")


def _fields(fields: Sequence[str] | None, has_text: bool) -> tuple[str, ...]:
    known = ROW_FIELDS + (TEXT_FIELDS if has_text else ())
    if fields is None:
        return known
    if isinstance(fields, str):
        raise ValueError(f"fields must be a list of field names, e.g. ['key', 'caption'], got {fields!r}")
    text = sorted(set(fields) & set(TEXT_FIELDS))
    if text and not has_text:
        raise ValueError(f"fields {text}: this output has no text embeddings (its job ran without a text encoder)")
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise ValueError(f"unknown fields {unknown}; a sample can carry {list(known)} (latent always)")
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
