"""The text encoder's settings, their defaults and checks: known without torch or transformers, so the
job's driver can check them before anything loads a model.

Token limits the T5-family video models train with (captions truncated to this many tokens, EOS
included), read from their public code:

    512  Wan 2.1 (umT5-XXL; ``wan/configs/shared_config.py``: ``text_len = 512``)
    512  Open-Sora-Plan v1.2 / v1.3 (mT5-XXL; training scripts pass ``--model_max_length 512``);
         v1.3 is the model WF-VAE was released with
    226  CogVideoX (T5-v1.1-XXL; diffusers ``max_sequence_length=226``, transformer ``max_text_seq_length``)
    128  LTX-Video 0.9 (T5-v1.1-XXL; its pipeline's ``max_length = 128``, diffusers' default); its later
         13B pipelines default to ``text_encoder_max_tokens=256``

The default is 512: the limit of the two models that pair with umT5/mT5 and with WF-VAE, and the
largest of the four. Each caption is stored at its own length, so a higher limit costs nothing for
captions shorter than it; but a stored embedding cannot be cut down to a lower limit afterwards (T5
attends over the whole caption: the first N rows of a long caption's embedding are not the embedding
of its first N tokens). Set the limit of the model being trained.
"""

from __future__ import annotations

from typing import Any

from ..dtypes import DTYPES, resolve_dtype
from ..settings import ConfigError

DEFAULT_MAX_TEXT_TOKENS = 512
TEXT_DTYPE_CHOICES = ("auto", *DTYPES)
# Captions per forward pass, and padded tokens per forward pass (captions x the longest one's tokens).
DEFAULT_BATCH_SIZE = 64
DEFAULT_BATCH_TOKENS = 16384

_TOKEN_LIMITS_NOTE = "512: Wan 2.1, Open-Sora-Plan v1.3; 226: CogVideoX; 128: LTX-Video"


def check_max_text_tokens(value: Any) -> int:
    """Raises ConfigError unless ``value`` is a whole number of tokens >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"must be a whole number of tokens >= 1 ({_TOKEN_LIMITS_NOTE}), got {value!r}",
                          "max_text_tokens")
    return value


def check_batching(batch_size: Any, batch_tokens: Any) -> tuple[int, int]:
    for name, value in (("batch_size", batch_size), ("batch_tokens", batch_tokens)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"must be an integer >= 1, got {value!r}", name)
    return batch_size, batch_tokens


def resolve_text_dtype(name: str, on_gpu: bool) -> str:
    """``auto`` is bfloat16 on a GPU and float32 on CPU; a precision's name is returned checked.

    bfloat16 rather than float16 on GPUs: T5 v1.1, mT5 and umT5 activations exceed float16's range
    (transformers clamps them in float16, changing the result), and those models were trained in bfloat16.
    """
    if name not in TEXT_DTYPE_CHOICES:
        raise ConfigError(f"must be one of {TEXT_DTYPE_CHOICES} (auto: bfloat16 on a GPU, float32 on CPU), "
                          f"got {name!r}", "text_dtype")
    return resolve_dtype(name, on_gpu)
