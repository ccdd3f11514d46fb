"""Decode a few stored latents and compare them with their source frames: a contact sheet and PSNR.

PSNR is over the whole clip (every frame, pixel and channel) on uint8 values with peak 255,
the decoder's [-1, 1] output quantised as a viewer would see it. The clips are spread evenly
over the committed rows, so several shards show up; the choice is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from wfvae import WFVAE

from ..dataset.shard_files import ShardFiles
from ..dataset.source import CommittedOutput, open_output
from ..output.schema import tensor_from_bytes
from .contact_sheet import ContactSheet, SheetClip, compose
from .psnr import psnr
from .source_frames import job_read_config, read_source_clips

COLUMNS = ["key", "shard", "clip", "latent", "latent_shape", "latent_dtype"]


@dataclass
class ClipCheck:
    key: str
    shard: str
    clip: int
    latent_shape: list[int]
    psnr: float
    frames: int  # frames compared


@dataclass
class DecodeCheck:
    sheet: ContactSheet
    clips: list[ClipCheck]
    same_weights: bool  # the model given is the one that encoded (by weights checksum)


def pick_rows(output: CommittedOutput, count: int) -> list[tuple[int, int]]:
    """(shard index, row) of ``count`` rows spread evenly over all committed rows."""
    total = output.num_rows
    chosen = sorted(set(np.linspace(0, total - 1, num=min(count, total)).round().astype(int).tolist()))
    places, first = [], 0
    for index, shard in enumerate(output.shards):
        places += [(index, row - first) for row in chosen if first <= row < first + shard.rows]
        first += shard.rows
    return places


def to_frames(video: torch.Tensor) -> np.ndarray:
    """(3, T, H, W) in [-1, 1] -> (T, H, W, 3) uint8."""
    return ((video.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).numpy()


def evenly_spaced(count: int, available: int) -> list[int]:
    return sorted(set(np.linspace(0, available - 1, num=min(count, available)).round().astype(int).tolist()))


def check_decoding(output_url: str, model: str, input_spec: str | None = None,
                   storage_options: dict[str, Any] | None = None, clips: int = 4, frames: int = 5,
                   tile_height: int | None = 128) -> DecodeCheck:
    """``input_spec`` defaults to the job's own input; ``model`` is a WF-VAE folder, checkpoint, repo id or
    fsspec URL (read with ``storage_options``)."""
    if clips < 1 or frames < 1:
        raise ValueError(f"clips and frames must be at least 1, got {clips} and {frames}")
    output = open_output(output_url, storage_options)
    rows = _read_rows(output, pick_rows(output, clips))
    vae = WFVAE.from_pretrained(model, storage_options=storage_options)
    same_weights = vae.weights_checksum() == output.manifest.model.weights_sha256
    wanted = [(row["shard"], row["key"], row["clip"]) for row in rows]
    sources = read_source_clips(wanted, input_spec or output.manifest.config["input"],
                                job_read_config(output.manifest), storage_options)
    sheet_clips, checks = [], []
    for row, clip_id in zip(rows, wanted):
        latent = tensor_from_bytes(row["latent"], row["latent_shape"], row["latent_dtype"]).float()
        decoded = to_frames(vae.decode(latent[None].to(vae.dtype))[0])
        source = sources[clip_id]
        length = min(len(source), len(decoded))  # equal unless the clip length does not fit the model
        value = psnr(source[:length], decoded[:length])
        shown = evenly_spaced(frames, length)
        sheet_clips.append(SheetClip(row["key"], row["clip"], value, shown, source[shown], decoded[shown]))
        checks.append(ClipCheck(row["key"], row["shard"], row["clip"], row["latent_shape"], value, length))
    return DecodeCheck(compose(sheet_clips, tile_height), checks, same_weights)


def _read_rows(output: CommittedOutput, places: list[tuple[int, int]]) -> list[dict[str, Any]]:
    files = ShardFiles(output)
    try:
        return [files.read("latents", shard, np.array([row]), COLUMNS).to_pylist()[0] for shard, row in places]
    finally:
        files.close()
