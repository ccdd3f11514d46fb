"""Peak signal-to-noise ratio of decoded frames against their source."""

from __future__ import annotations

import math

import numpy as np


def psnr(reference: np.ndarray, test: np.ndarray, peak: float = 255.0) -> float:
    """PSNR in dB over every value of two equally shaped arrays (e.g. a whole clip's uint8 RGB
    frames, peak 255): 10 log10(peak^2 / MSE). Identical inputs give ``math.inf``."""
    a, b = np.asarray(reference, dtype=np.float64), np.asarray(test, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"PSNR needs arrays of one shape, got {a.shape} and {b.shape}")
    if a.size == 0:
        raise ValueError("PSNR of empty arrays")
    mse = float(np.mean(np.square(a - b)))
    return math.inf if mse == 0 else 10.0 * math.log10(peak * peak / mse)


def format_psnr(value: float) -> str:
    return "inf dB (identical)" if math.isinf(value) else f"{value:.2f} dB"
