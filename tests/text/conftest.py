"""Tiny random T5-family models in the released layouts, built once per session, each with its own tokenizer.
Nothing is downloaded: the Hugging Face hub is off for these tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

from tests.support.text_models import MODEL_TYPES, make_text_model  # noqa: E402 - after HF_HUB_OFFLINE


@pytest.fixture(scope="session")
def text_models(tmp_path_factory) -> dict[str, Path]:
    """``t5``, ``mt5``, ``umt5``: encoder-only checkpoints (one model.safetensors); ``umt5-full`` and
    ``t5-full``: encoder-decoder checkpoints, sharded with an index, as google/umt5-xxl is published."""
    root = tmp_path_factory.mktemp("text-models")
    models = {model_type: make_text_model(root / model_type, model_type, seed=index)
              for index, model_type in enumerate(MODEL_TYPES)}
    for model_type in ("umt5", "t5"):
        models[f"{model_type}-full"] = make_text_model(root / f"{model_type}-full", model_type, full=True, seed=7,
                                                       max_shard_size="40KB")
    return models
