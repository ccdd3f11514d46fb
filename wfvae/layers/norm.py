"""Normalisation layers of WF-VAE.

LayerNorm normalises each (frame, pixel) over channels, so it is indifferent to how a
clip is chunked. GroupNorm on a 3D block takes statistics over all frames of the call,
so a chunked call would compute different numbers: it refuses to run chunked.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..cache import CausalCache

GROUPS = 32


def layer_norm_last(x: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
    """LayerNorm over the last dim, with statistics in float32 for half-precision inputs (as
    autocast does): in bfloat16 they are the largest source of error in the latents."""
    if x.dtype in (torch.float16, torch.bfloat16):
        return F.layer_norm(x.float(), norm.normalized_shape, norm.weight.float(), norm.bias.float(),
                            norm.eps).to(x.dtype)
    return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel dim of (B, C, ...) tensors (released key: ``norm.weight``)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: torch.Tensor, cache: CausalCache | None = None) -> torch.Tensor:
        return layer_norm_last(x.movedim(1, -1), self.norm).movedim(-1, 1)


class FrameGroupNorm(nn.GroupNorm):
    """GroupNorm with statistics per frame (the 2D blocks of the encoder)."""

    def __init__(self, channels: int) -> None:
        super().__init__(GROUPS, channels, eps=1e-6, affine=True)

    def forward(self, x: torch.Tensor, cache: CausalCache | None = None) -> torch.Tensor:
        if x.dim() == 4:
            return super().forward(x)
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)
        return super().forward(frames).reshape(b, t, c, h, w).transpose(1, 2)


class ClipGroupNorm(nn.GroupNorm):
    """GroupNorm with statistics over the whole clip (the 3D blocks): not chunk-exact."""

    def __init__(self, channels: int) -> None:
        super().__init__(GROUPS, channels, eps=1e-6, affine=True)

    def forward(self, x: torch.Tensor, cache: CausalCache | None = None) -> torch.Tensor:
        if cache is not None and not (cache.closing and cache.starts_clip(self)):
            raise ValueError("this WF-VAE uses GroupNorm, whose statistics span all frames, so chunked "
                             "(Causal Cache) calls would change the result; encode/decode the whole clip "
                             "at once (chunk_frames=None)")
        return super().forward(x)


def make_norm(norm_type: str, channels: int, per_frame: bool) -> nn.Module:
    if norm_type == "layernorm":
        return ChannelLayerNorm(channels)
    return FrameGroupNorm(channels) if per_frame else ClipGroupNorm(channels)
