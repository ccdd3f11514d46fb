"""Parquet schemas of the job's output. Readers rely on these column names.

``latent`` (and ``logvar`` when moments are stored) hold the raw posterior as
C-contiguous little-endian tensor bytes of shape ``latent_shape`` = [C, t, h, w] and
dtype ``latent_dtype``; normalisation is the reader's choice (scale/shift are in the
file's key-value metadata, measured statistics in ``_summary.json``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ..dtypes import LATENT_DTYPES  # the project's one table; readers of the schema import it from here too

if TYPE_CHECKING:  # imported where tensors are converted: writing the schema's files needs no torch
    import torch

LATENTS_SCHEMA = pa.schema([
    pa.field("key", pa.string(), nullable=False),
    pa.field("shard", pa.string(), nullable=False),
    pa.field("media_type", pa.string(), nullable=False),  # "video" or "image" (one clip of one frame)
    pa.field("clip", pa.int32(), nullable=False),
    pa.field("frame_start", pa.int32(), nullable=False),
    pa.field("num_frames", pa.int32(), nullable=False),
    pa.field("fps", pa.float32()),  # null for an image: it has no frame rate
    pa.field("height", pa.int32(), nullable=False),
    pa.field("width", pa.int32(), nullable=False),
    pa.field("caption", pa.string()),
    pa.field("meta", pa.string()),
    pa.field("latent", pa.binary(), nullable=False),
    pa.field("latent_shape", pa.list_(pa.int32()), nullable=False),
    pa.field("latent_dtype", pa.string(), nullable=False),
    pa.field("logvar", pa.binary()),
    # provenance beyond the required columns
    pa.field("frame_indices", pa.list_(pa.int32())),
    pa.field("timestamps", pa.list_(pa.float32())),
    pa.field("source_fps", pa.float32()),  # null for an image
    pa.field("source_height", pa.int32()),
    pa.field("source_width", pa.int32()),
    pa.field("source_num_frames", pa.int32()),
    pa.field("source_frames_estimated", pa.bool_()),  # source_fps/source_num_frames from the header, not counted
    # the video holds fewer frames than its header claims (null: not known, as when a first clip stops reading
    # early); its error rows then hold an EndedEarly warning
    pa.field("source_ended_early", pa.bool_()),
    # with a text encoder: the row of this sample's caption embedding in text/<shard>.parquet (null: no caption)
    pa.field("text_row", pa.int32()),
])

# text/<shard>.parquet, with a text encoder: one row per sample whose clips have a caption, in input order; its
# clips' latent rows name it (text_row). ``text_embedding``: the encoder's last hidden state over the caption's
# tokens, [text_length, text_dim] C-contiguous little-endian bytes of ``text_dtype`` (key-value metadata, with
# text_encoder, text_dim and max_text_tokens), stored once per sample however many clips share it.
TEXT_SCHEMA = pa.schema([
    pa.field("key", pa.string(), nullable=False),
    pa.field("text_embedding", pa.binary(), nullable=False),
    pa.field("text_length", pa.int32(), nullable=False),
])

ERRORS_SCHEMA = pa.schema([
    pa.field("key", pa.string()),  # null for shard-level problems (a corrupt tar)
    pa.field("shard", pa.string(), nullable=False),
    pa.field("stage", pa.string(), nullable=False),
    pa.field("error_type", pa.string(), nullable=False),
    pa.field("message", pa.string(), nullable=False),
    # "error" (the sample or shard gave no more) or "warning" (its rows stand: EndedEarly); a null, and the
    # column's absence in files written before it, read as "error"
    pa.field("level", pa.string()),
])


def tensor_bytes(tensor: torch.Tensor) -> bytes:
    """C-contiguous little-endian bytes of a CPU tensor (bfloat16 included)."""
    import torch

    data = tensor.detach().cpu().contiguous()
    raw = data.view(torch.uint8).numpy() if data.dtype == torch.bfloat16 else data.numpy()
    if raw.dtype.byteorder == ">":  # pragma: no cover - big-endian hosts
        raw = raw.byteswap()
    return raw.tobytes()


def tensor_from_bytes(payload: bytes, shape: list[int], dtype: str) -> torch.Tensor:
    """Inverse of ``tensor_bytes``."""
    import torch

    if dtype not in LATENT_DTYPES:
        raise ValueError(f"unknown latent dtype {dtype!r}; expected one of {sorted(LATENT_DTYPES)}")
    buffer = np.frombuffer(payload, dtype=np.uint8).copy()
    return torch.from_numpy(buffer).view(LATENT_DTYPES[dtype]).view(*shape)


def file_metadata(values: dict[str, Any]) -> dict[bytes, bytes]:
    """Parquet key-value metadata: JSON-encoded values under plain keys."""
    return {k.encode(): (v if isinstance(v, str) else json.dumps(v)).encode() for k, v in values.items()}


def read_file_metadata(schema: pa.Schema) -> dict[str, Any]:
    decoded = {}
    for key, value in (schema.metadata or {}).items():
        text = value.decode()
        try:
            decoded[key.decode()] = json.loads(text)
        except json.JSONDecodeError:
            decoded[key.decode()] = text
    return decoded
