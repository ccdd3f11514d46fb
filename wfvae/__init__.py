"""WF-VAE: a faithful, chunk-exact re-implementation of the Wavelet-driven energy-Flow VAE."""

from .cache import CausalCache
from .config import WFVAEConfig
from .loading import CheckpointError
from .model import WFVAE
from .posterior import DiagonalGaussian
from .presets import PRESETS, preset
from .streaming import StreamDecoder, StreamEncoder

__all__ = ["WFVAE", "WFVAEConfig", "CausalCache", "CheckpointError", "DiagonalGaussian", "PRESETS", "preset",
           "StreamEncoder", "StreamDecoder"]
