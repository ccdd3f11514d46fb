"""Caption embeddings from a T5-family text encoder (T5, mT5, umT5), for storing beside the latents.

    from pipeline.text import load_text_encoder
    encoder = load_text_encoder("s3://bucket/models/umt5-xxl/", dtype="bfloat16", device="cuda")
    embeddings = encoder.encode(captions)     # one [L, D] tensor per caption, on the CPU
    encoder.identity.to_dict()                # what defines them, for the output's identity check

``settings`` (defaults, checks, the dtype resolver), ``identity`` and ``loading`` import neither torch
nor transformers at import time; ``encoder`` (torch) and transformers load with a model.
"""

from .identity import TextEncoderIdentity
from .loading import TextModelError, load_text_encoder, read_text_config
from .settings import DEFAULT_MAX_TEXT_TOKENS, TEXT_DTYPE_CHOICES, resolve_text_dtype

__all__ = ["DEFAULT_MAX_TEXT_TOKENS", "TEXT_DTYPE_CHOICES", "TextEncoderIdentity", "TextModelError",
           "load_text_encoder", "read_text_config", "resolve_text_dtype"]
