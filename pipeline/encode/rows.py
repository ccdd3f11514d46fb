"""Output rows: one per encoded clip, one per failed sample."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ..output.layout import shard_name
from ..output.schema import LATENT_DTYPES, tensor_bytes

if TYPE_CHECKING:
    from ..reading import ErrorRecord


def latent_row(info: Any, shard: str, mean: torch.Tensor, logvar: torch.Tensor | None, latent_dtype: str,
               text_row: int | None = None) -> dict[str, Any]:
    """``info`` is a pipeline.reading.ClipInfo; ``mean``/``logvar`` are one clip's (C, t, h, w); ``text_row``: the
    row of its sample's caption embedding in the shard's text file."""
    dtype = LATENT_DTYPES[latent_dtype]
    return {
        "key": info.key,
        "shard": shard,
        "media_type": info.media_type,
        "clip": info.clip_index,
        "frame_start": info.frame_indices[0],
        "num_frames": info.num_frames,
        "fps": info.fps,
        "height": info.height,
        "width": info.width,
        "caption": info.caption,
        "meta": info.meta,
        "latent": tensor_bytes(mean.to(dtype)),
        "latent_shape": list(mean.shape),
        "latent_dtype": latent_dtype,
        "logvar": None if logvar is None else tensor_bytes(logvar.to(dtype)),
        "frame_indices": list(info.frame_indices),
        "timestamps": [float(t) for t in info.timestamps],
        "source_fps": info.source_fps,
        "source_height": info.source_height,
        "source_width": info.source_width,
        "source_num_frames": info.source_num_frames,
        "source_frames_estimated": info.source_frames_estimated,
        "source_ended_early": info.source_ended_early,
        "text_row": text_row,
    }


def text_row(key: str, embedding: torch.Tensor) -> dict[str, Any]:
    """The text table's row of a sample's caption embedding ``[L, D]`` (``output.schema.TEXT_SCHEMA``)."""
    return {"key": key, "text_embedding": tensor_bytes(embedding), "text_length": int(embedding.shape[0])}


def error_row(record: ErrorRecord) -> dict[str, Any]:
    """The error table's row of a problem, wherever it was met (``output.schema.ERRORS_SCHEMA``)."""
    return {"key": record.key, "shard": shard_name(record.shard), "stage": record.stage,
            "error_type": record.error_type, "message": record.message, "level": record.level}
