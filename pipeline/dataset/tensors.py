"""Parquet tensor cells (``latent``, ``logvar``, ``text_embedding``) to tensors without copying them.

A read's binary column is one Arrow array: a single data buffer plus offsets. Each row's tensor is a
view of that buffer. Not copying matters: a fresh 75 MB copy per 256 latents costs as much as reading
them, and a 120 x 4096 bfloat16 text embedding is 1 MB a sample. The buffer is memory pyarrow
decoded the column into, which nothing else refers to, so handing it out as writable tensors is safe
(they keep it alive); a buffer pyarrow marks immutable (a view of a mapped file) is copied instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import torch

from ..dtypes import ITEMSIZES
from ..output.schema import LATENT_DTYPES

TORCH_DTYPES = {name: LATENT_DTYPES[name] for name in LATENT_DTYPES}  # looked up once per row


def latent_shapes(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """The ``latent_shape`` column as an (n, 4) int array."""
    array = single_array(column)
    lengths = array.value_lengths().to_numpy(zero_copy_only=False)
    if len(lengths) and not (lengths == 4).all():
        raise ValueError(f"latent_shape must be [C, t, h, w]; found lengths {sorted(set(lengths.tolist()))}")
    return array.flatten().to_numpy(zero_copy_only=False).astype(np.int64).reshape(-1, 4)


def single_array(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """One array without copying when there is one chunk (``combine_chunks`` copies even then)."""
    if isinstance(column, pa.Array):
        return column
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


class Payloads:
    """One binary column of a read (a chunk per row group); ``tensors`` views each row's bytes as a tensor."""

    def __init__(self, column: pa.ChunkedArray | pa.Array, name: str) -> None:
        chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
        nulls = sum(chunk.null_count for chunk in chunks)
        if nulls:
            raise ValueError(f"{nulls} row(s) have no {name!r} value")
        self.name = name
        self.parts = [_chunk_bytes(chunk) for chunk in chunks if len(chunk)]  # (data, offsets from 0)
        self.lengths = np.concatenate([np.diff(offsets) for _, offsets in self.parts]) if self.parts else \
            np.zeros(0, dtype=np.int64)
        self.rows = len(self.lengths)

    def tensors(self, dtype_names: Sequence[str], shapes: np.ndarray) -> list[torch.Tensor]:
        """Row i as a ``dtype_names[i]`` tensor of shape ``shapes[i]``, after checking every row's size."""
        unknown = set(dtype_names) - set(TORCH_DTYPES)
        if unknown:
            raise ValueError(f"unknown {self.name} dtype {sorted(unknown)}; expected one of {sorted(TORCH_DTYPES)}")
        itemsizes = np.fromiter((ITEMSIZES[name] for name in dtype_names), dtype=np.int64, count=self.rows)
        sizes = np.prod(shapes, axis=1) * itemsizes
        if (self.lengths != sizes).any():
            bad = int(np.argmax(self.lengths != sizes))
            raise ValueError(f"row {bad}: {self.name!r} holds {int(self.lengths[bad])} bytes, but shape "
                             f"{shapes[bad].tolist()} of {dtype_names[bad]} needs {int(sizes[bad])}")
        out, row = [], 0
        for data, offsets in self.parts:
            n = len(offsets) - 1
            out.extend(_views(data, offsets, dtype_names[row:row + n], shapes[row:row + n]))
            row += n
        return out


def _views(data: torch.Tensor, offsets: np.ndarray, dtype_names: Sequence[str],
           shapes: np.ndarray) -> list[torch.Tensor]:
    """A chunk's rows as views of its bytes: viewed as the dtype once, then sliced (a view per row from
    bytes costs 20 us, 2 GB/s of text embeddings); rows of one shape in one view, unbound."""
    name = dtype_names[0]
    itemsize = ITEMSIZES[name]
    if any(other != name for other in dtype_names) or (offsets % itemsize).any():
        out = []  # mixed or unaligned: each row on its own, copied where it must be
        for start, stop, row_dtype, shape in zip(offsets[:-1].tolist(), offsets[1:].tolist(), dtype_names,
                                                 shapes.tolist()):
            raw = data[start:stop]
            raw = raw.clone() if start % ITEMSIZES[row_dtype] else raw
            out.append(raw.view(TORCH_DTYPES[row_dtype]).view(shape))
        return out
    values = data.view(TORCH_DTYPES[name])
    if (shapes == shapes[0]).all():
        return list(values.view(len(shapes), *shapes[0].tolist()).unbind(0))
    starts = (offsets // itemsize).tolist()
    return [values[a:b].view(shape) for a, b, shape in zip(starts[:-1], starts[1:], shapes.tolist())]


def _chunk_bytes(array: pa.Array) -> tuple[torch.Tensor, np.ndarray]:
    """A binary array's values as one uint8 tensor (a view of its buffer) and its offsets from 0."""
    _, offset_buffer, data_buffer = array.buffers()
    offset_type = np.int64 if pa.types.is_large_binary(array.type) else np.int32
    offsets = np.frombuffer(offset_buffer, dtype=offset_type, count=len(array) + 1,
                            offset=array.offset * np.dtype(offset_type).itemsize).astype(np.int64)
    return _bytes_tensor(data_buffer)[offsets[0]:offsets[-1]], offsets - offsets[0]


def _bytes_tensor(buffer: pa.Buffer | None) -> torch.Tensor:
    if buffer is None or buffer.size == 0:
        return torch.empty(0, dtype=torch.uint8)
    with warnings.catch_warnings():  # Arrow marks its buffers read-only; see the module docstring
        warnings.simplefilter("ignore", UserWarning)
        tensor = torch.frombuffer(buffer, dtype=torch.uint8)
    return tensor if buffer.is_mutable else tensor.clone()
