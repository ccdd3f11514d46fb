"""Per-channel latent statistics, mergeable across shards and runs.

Diffusion training normalises latents per channel; the job measures mean and std over
everything it encoded. Sums are kept in float64 so shards merge exactly in any order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported by ``add``: merging and reporting statistics needs no torch
    import torch


@dataclass
class LatentStats:
    count: int = 0  # values per channel
    sum: list[float] = field(default_factory=list)
    sum_sq: list[float] = field(default_factory=list)

    def add(self, latents: torch.Tensor) -> None:
        """latents (C, ...) or (B, C, ...)."""
        import torch

        values = latents.detach().to(torch.float64)
        channels = values.shape[-4] if values.dim() >= 4 else values.shape[0]
        per_channel = values.movedim(-4 if values.dim() >= 4 else 0, 0).reshape(channels, -1)
        sums, squares = per_channel.sum(dim=1).tolist(), per_channel.square().sum(dim=1).tolist()
        if not self.sum:
            self.sum, self.sum_sq = [0.0] * channels, [0.0] * channels
        if len(self.sum) != channels:
            raise ValueError(f"latents with {channels} channels added to statistics of {len(self.sum)}")
        self.count += per_channel.shape[1]
        self.sum = [a + b for a, b in zip(self.sum, sums)]
        self.sum_sq = [a + b for a, b in zip(self.sum_sq, squares)]

    def merge(self, other: "LatentStats") -> "LatentStats":
        if not other.count:
            return self
        if not self.count:
            return LatentStats(other.count, list(other.sum), list(other.sum_sq))
        if len(self.sum) != len(other.sum):
            raise ValueError(f"cannot merge statistics of {len(self.sum)} and {len(other.sum)} channels")
        return LatentStats(self.count + other.count, [a + b for a, b in zip(self.sum, other.sum)],
                           [a + b for a, b in zip(self.sum_sq, other.sum_sq)])

    @property
    def mean(self) -> list[float]:
        return [s / self.count for s in self.sum] if self.count else []

    @property
    def std(self) -> list[float]:
        if not self.count:
            return []
        return [max(q / self.count - m * m, 0.0) ** 0.5 for q, m in zip(self.sum_sq, self.mean)]

    def to_dict(self) -> dict:
        return {"count": self.count, "sum": self.sum, "sum_sq": self.sum_sq}

    @classmethod
    def from_dict(cls, data: dict | None) -> "LatentStats":
        data = data or {}
        return cls(int(data.get("count", 0)), list(data.get("sum", [])), list(data.get("sum_sq", [])))
