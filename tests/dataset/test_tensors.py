"""Tensor cells to tensors: views of what pyarrow read, a chunk per row group, each row checked."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

from pipeline.dataset.tensors import Payloads
from pipeline.output.schema import tensor_bytes


def _column(*chunks):
    return pa.chunked_array([pa.array([tensor_bytes(t) for t in chunk], pa.binary()) for chunk in chunks])


def test_rows_of_one_shape_are_views_of_the_buffer_read():
    rows = [torch.randn(2, 3).to(torch.bfloat16) for _ in range(4)]
    payloads = Payloads(_column(rows[:3], rows[3:]), "latent")
    out = payloads.tensors(["bfloat16"] * 4, np.array([[2, 3]] * 4))
    assert all(torch.equal(a, b) for a, b in zip(out, rows))
    assert out[0].untyped_storage().data_ptr() == out[2].untyped_storage().data_ptr()  # one buffer, no copy
    out[0].fill_(1)  # writable, and a row's own bytes only
    assert torch.equal(out[1], rows[1])


def test_rows_of_other_lengths_and_dtypes_each_get_their_own_view():
    rows = [torch.randn(1, 4).half(), torch.randn(3, 4).float(), torch.randn(2, 4).bfloat16()]
    out = Payloads(_column(rows), "text_embedding").tensors(["float16", "float32", "bfloat16"],
                                                            np.array([[1, 4], [3, 4], [2, 4]]))
    assert [t.dtype for t in out] == [torch.float16, torch.float32, torch.bfloat16]
    assert all(torch.equal(a, b) for a, b in zip(out, rows))  # the float32 row starts unaligned: copied


def test_a_row_of_the_wrong_size_is_refused():
    payloads = Payloads(_column([torch.zeros(2, 3), torch.zeros(2, 2)]), "latent")
    with pytest.raises(ValueError, match=r"row 1: 'latent' holds 16 bytes, but shape \[2, 3\] of float32 needs 24"):
        payloads.tensors(["float32"] * 2, np.array([[2, 3]] * 2))
