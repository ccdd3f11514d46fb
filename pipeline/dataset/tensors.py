"""Parquet rows to latent tensors without a Python step per element.

A block's ``latent`` (or ``logvar``) column is one Arrow binary array: a single data buffer
plus offsets. Tensors are views of that buffer, (n, C, t, h, w) per group of rows that
share a dtype and shape (rows of a group that are not adjacent are stacked). Not copying
matters: a fresh 75 MB copy per 256 rows costs as much as reading them. The buffer is
Arrow heap memory that nothing else refers to (files are read without memory mapping),
so handing it out as writable tensors is safe; they keep it alive.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pyarrow as pa
import torch

from ..output.schema import LATENT_DTYPES

GroupKey = tuple[str, tuple[int, ...]]  # (stored dtype name, [C, t, h, w])


def latent_shapes(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """The ``latent_shape`` column as an (n, 4) int array."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    lengths = array.value_lengths().to_numpy(zero_copy_only=False)
    if len(lengths) and not (lengths == 4).all():
        raise ValueError(f"latent_shape must be [C, t, h, w]; found lengths {sorted(set(lengths.tolist()))}")
    return array.flatten().to_numpy(zero_copy_only=False).astype(np.int64).reshape(-1, 4)


def group_rows(dtype_names: list[str], shapes: np.ndarray) -> dict[GroupKey, np.ndarray]:
    """Row indices per (dtype, shape), in order of first appearance."""
    groups: dict[GroupKey, list[int]] = {}
    for row, key in enumerate(zip(dtype_names, map(tuple, shapes.tolist()))):
        groups.setdefault(key, []).append(row)
    return {key: np.asarray(rows, dtype=np.int64) for key, rows in groups.items()}


class Payloads:
    """One binary column's bytes as a tensor (no copy); ``group`` views one group's rows as (n, C, t, h, w)."""

    def __init__(self, column: pa.ChunkedArray | pa.Array, name: str) -> None:
        array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        if array.null_count:
            raise ValueError(f"{array.null_count} row(s) have no {name!r} value")
        self.name = name
        self.rows = len(array)
        _, offset_buffer, data_buffer = array.buffers()
        offset_type = np.int64 if pa.types.is_large_binary(array.type) else np.int32
        offsets = np.frombuffer(offset_buffer, dtype=offset_type, count=self.rows + 1,
                                offset=array.offset * np.dtype(offset_type).itemsize).astype(np.int64)
        self.offsets = offsets - offsets[0]
        self.data = _bytes_tensor(data_buffer)[offsets[0]:offsets[-1]]

    def group(self, key: GroupKey, rows: np.ndarray) -> torch.Tensor:
        dtype_name, shape = key
        if dtype_name not in LATENT_DTYPES:
            raise ValueError(f"unknown latent dtype {dtype_name!r}; expected one of {sorted(LATENT_DTYPES)}")
        dtype = LATENT_DTYPES[dtype_name]
        size = math.prod(shape) * dtype.itemsize
        lengths = self.offsets[rows + 1] - self.offsets[rows]
        if (lengths != size).any():
            bad = int(rows[np.argmax(lengths != size)])
            raise ValueError(f"row {bad}: {self.name!r} holds {int(self.offsets[bad + 1] - self.offsets[bad])} bytes, "
                             f"but shape {list(shape)} of {dtype_name} needs {size}")
        if len(rows) == self.rows:  # every row of the block: one contiguous buffer, no copy
            raw = self.data
        else:
            raw = torch.stack([self.data[self.offsets[r]:self.offsets[r] + size] for r in rows.tolist()])
        return raw.view(dtype).view(len(rows), *shape)


def _bytes_tensor(buffer: pa.Buffer | None) -> torch.Tensor:
    if buffer is None or buffer.size == 0:
        return torch.empty(0, dtype=torch.uint8)
    with warnings.catch_warnings():  # Arrow marks its buffers read-only; see the module docstring
        warnings.simplefilter("ignore", UserWarning)
        return torch.frombuffer(buffer, dtype=torch.uint8)
