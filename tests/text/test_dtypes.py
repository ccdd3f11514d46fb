"""The text dtype: the weights, the computation and the stored embeddings are in it; "auto" is resolved
by where the encoder runs."""

from __future__ import annotations

import pytest
import torch

from pipeline.settings import ConfigError
from pipeline.text import load_text_encoder, resolve_text_dtype
from tests.text.test_equivalence import CAPTIONS


@pytest.mark.parametrize("dtype, tolerance", [("bfloat16", 0.05), ("float16", 0.01)])
def test_each_dtype_runs_and_stores_in_that_dtype_near_float32(text_models, dtype, tolerance):
    reference = load_text_encoder(text_models["umt5-full"]).encode(CAPTIONS)
    encoder = load_text_encoder(text_models["umt5-full"], dtype=dtype)
    # in float16 transformers keeps T5's feed-forward output projections (wo) in float32, against overflow
    kept = {name for name, _ in encoder.model.named_parameters() if name.endswith(".wo.weight")} \
        if dtype == "float16" else set()
    assert {name for name, parameter in encoder.model.named_parameters()
            if parameter.dtype != getattr(torch, dtype)} == kept
    assert encoder.identity.dtype == dtype
    for expected, embedding in zip(reference, encoder.encode(CAPTIONS)):
        assert embedding.dtype == getattr(torch, dtype) and embedding.shape == expected.shape
        error = (embedding.float() - expected).norm() / expected.norm()
        assert 0 < error < tolerance  # rounded, not recomputed in float32


def test_auto_is_bfloat16_on_a_gpu_and_float32_on_cpu():
    assert resolve_text_dtype("auto", on_gpu=True) == "bfloat16"
    assert resolve_text_dtype("auto", on_gpu=False) == "float32"
    assert resolve_text_dtype("float16", on_gpu=True) == "float16"


def test_an_unknown_dtype_is_refused_naming_the_allowed_ones(text_models):
    with pytest.raises(ConfigError, match=r"text_dtype must be one of \('auto', 'float32', 'float16', 'bfloat16'\)"):
        resolve_text_dtype("fp8", on_gpu=True)
    with pytest.raises(ValueError, match=r"dtype must be one of \('float32', 'float16', 'bfloat16'\), got 'auto'"):
        load_text_encoder(text_models["t5"], dtype="auto")
