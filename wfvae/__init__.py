"""WF-VAE: a faithful, chunk-exact re-implementation of the Wavelet-driven energy-Flow VAE.

Its names are imported when first used: ``wfvae.config`` and ``wfvae.loading.read_config`` (a model's
settings, for checks before any weights load) work without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cache import CausalCache
    from .config import WFVAEConfig
    from .loading import CheckpointError
    from .model import WFVAE
    from .posterior import DiagonalGaussian
    from .presets import PRESETS, preset
    from .streaming import StreamDecoder, StreamEncoder

_MODULES = {"CausalCache": "cache", "WFVAEConfig": "config", "CheckpointError": "loading", "WFVAE": "model",
            "DiagonalGaussian": "posterior", "PRESETS": "presets", "preset": "presets", "StreamEncoder": "streaming",
            "StreamDecoder": "streaming"}

__all__ = ["WFVAE", "WFVAEConfig", "CausalCache", "CheckpointError", "DiagonalGaussian", "PRESETS", "preset",
           "StreamEncoder", "StreamDecoder"]


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_MODULES[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
