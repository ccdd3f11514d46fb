"""What the training loop gets instead of the stored posterior mean: sampling, normalisation, dtype.

Normalisations (``normalize=``):
    "raw"       the stored values, unchanged (the default: the stored data is the truth,
                and either scaling below is one option away)
    "model"     (z - shift) * scale with the model config's per-channel scale/shift, as the
                WF-VAE releases and Open-Sora-Plan train (file metadata ``scale``/``shift``)
    "measured"  (z - mean) / std with the per-channel statistics the job measured over
                everything it committed (the figures of _summary.json's latent_stats)

Arithmetic is in float32 whatever the stored or output dtype.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

NORMALIZATIONS = ("raw", "model", "measured")


@dataclass(frozen=True)
class LatentTransform:
    """Applied row by row: a row's float32 copy (~0.6 MB for 16x9x32x32) is reused from the heap,
    while a whole block's (~150 MB) is fresh memory whose page faults cost 3x the arithmetic. Noise
    is drawn per row from the row's own seed, so a row gets the same draw however the epoch is read
    (whole, resumed, or split among other readers)."""

    dtype: torch.dtype | None  # None: keep the stored dtype
    shift: tuple[float, ...] | None  # per channel; normalised = (z - shift) * factor
    factor: tuple[float, ...] | None
    sample: bool  # draw z = mean + exp(logvar / 2) * noise instead of taking the mean

    def __call__(self, mean: torch.Tensor, logvar: torch.Tensor | None, seed: int | None) -> torch.Tensor:
        """One row: mean, logvar (C, t, h, w) in the stored dtype; ``seed`` seeds the row's noise."""
        out_dtype = self.dtype or mean.dtype
        if self.shift is None and not self.sample:
            return mean if mean.dtype == out_dtype else mean.to(out_dtype)
        z = mean.to(torch.float32, copy=True)
        if self.sample:
            noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
            z.addcmul_(logvar.float().mul(0.5).exp_(), noise)  # mul, not mul_: logvar may be the stored bytes
        if self.shift is not None:
            z.sub_(_per_channel(self.shift, z)).mul_(_per_channel(self.factor, z))
        return z if out_dtype == torch.float32 else z.to(out_dtype)

    def invert(self, normalised: torch.Tensor) -> torch.Tensor:
        """Back to the model's latent space (before decoding generated latents); channels at dim -4."""
        if self.shift is None:
            return normalised
        z = normalised.float()
        return (z / _per_channel(self.factor, z) + _per_channel(self.shift, z)).to(normalised.dtype)


def _per_channel(values: tuple[float, ...], like: torch.Tensor) -> torch.Tensor:
    """(C, 1, 1, 1) float32, to broadcast over (..., C, t, h, w)."""
    if len(values) != like.shape[-4]:
        raise ValueError(f"normalisation has {len(values)} channels, latents have {like.shape[-4]}")
    return _column(values)


@functools.lru_cache(maxsize=8)
def _column(values: tuple[float, ...]) -> torch.Tensor:
    """Made once, not per row (only ever read)."""
    return torch.tensor(values, dtype=torch.float32).view(-1, 1, 1, 1)


def build_transform(normalize: str, dtype: torch.dtype | None, sample_posterior: bool, *, stored: str,
                    scale: list[float] | None, shift: list[float] | None, mean: list[float],
                    std: list[float], channels: int | None) -> LatentTransform:
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    if sample_posterior and stored != "moments":
        raise ValueError(f"sample_posterior=True needs the posterior's moments, but this output stores only "
                         f"{stored!r}; re-encode with --store moments, or read the mean (sample_posterior=False)")
    offset = factor = None
    if normalize == "model":
        if not scale or not shift:
            raise ValueError("normalize='model': the latents files carry no scale/shift metadata")
        offset, factor = tuple(shift), tuple(scale)
    elif normalize == "measured":
        if not mean or not std:
            raise ValueError("normalize='measured': the committed shards carry no latent statistics")
        if any(s <= 0 for s in std):
            raise ValueError(f"normalize='measured': a channel has zero measured std ({std}); use 'model' or 'raw'")
        offset, factor = tuple(mean), tuple(1.0 / s for s in std)
    if offset is not None and channels is not None and len(offset) != channels:
        raise ValueError(f"normalize={normalize!r}: {len(offset)} per-channel values for {channels} latent channels")
    return LatentTransform(dtype, offset, factor, sample_posterior)
