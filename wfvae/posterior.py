"""The encoder's diagonal-Gaussian posterior over latents."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DiagonalGaussian:
    """Mean and log-variance of q(z | video), each (B, C, t, h, w).

    ``logvar`` is clamped to [-30, 20] like the reference. ``mean`` is what latent
    caches usually store; keep ``logvar`` too to sample fresh latents at training time.
    """

    mean: torch.Tensor
    logvar: torch.Tensor

    @classmethod
    def from_moments(cls, moments: torch.Tensor) -> "DiagonalGaussian":
        mean, logvar = moments.chunk(2, dim=1)
        return cls(mean, logvar.clamp(-30.0, 20.0))

    @property
    def std(self) -> torch.Tensor:
        return torch.exp(0.5 * self.logvar)

    def mode(self) -> torch.Tensor:
        return self.mean

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * noise

    @staticmethod
    def cat(parts: list["DiagonalGaussian"]) -> "DiagonalGaussian":
        return DiagonalGaussian(torch.cat([p.mean for p in parts], dim=2), torch.cat([p.logvar for p in parts], dim=2))
