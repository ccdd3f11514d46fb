"""Residual, attention and container blocks of WF-VAE."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..cache import CausalCache
from .conv import CausalConv3d, FrameConv2d
from .norm import ChannelLayerNorm, layer_norm_last, make_norm


class CausalSequential(nn.Sequential):
    """nn.Sequential that hands the Causal Cache to every layer."""

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, cache)
        return x


class ResnetBlock(nn.Module):
    """Pre-norm residual block: per frame (2D convolutions) or causal in time (3x3x3)."""

    def __init__(self, in_channels: int, out_channels: int, norm_type: str, dropout: float = 0.0, *,
                 per_frame: bool) -> None:
        super().__init__()

        def conv(cin: int, cout: int, kernel: int) -> nn.Module:
            if per_frame:
                return FrameConv2d(cin, cout, kernel_size=kernel, padding=kernel // 2)
            return CausalConv3d(cin, cout, kernel_size=kernel, padding=kernel // 2)

        self.norm1 = make_norm(norm_type, in_channels, per_frame=per_frame)
        self.conv1 = conv(in_channels, out_channels, 3)
        self.norm2 = make_norm(norm_type, out_channels, per_frame=per_frame)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = conv(out_channels, out_channels, 3)
        if in_channels != out_channels:
            self.nin_shortcut = conv(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x, cache)), cache)
        h = self.conv2(self.dropout(F.silu(self.norm2(h, cache))), cache)
        shortcut = self.nin_shortcut(x, cache) if hasattr(self, "nin_shortcut") else x
        return shortcut + h


def ResnetBlock2D(in_channels: int, out_channels: int, norm_type: str, dropout: float = 0.0) -> ResnetBlock:
    return ResnetBlock(in_channels, out_channels, norm_type, dropout, per_frame=True)


def ResnetBlock3D(in_channels: int, out_channels: int, norm_type: str, dropout: float = 0.0) -> ResnetBlock:
    return ResnetBlock(in_channels, out_channels, norm_type, dropout, per_frame=False)


class FrameAttention(nn.Module):
    """Single-head self-attention among the pixels of each frame (the reference's AttnBlock3DFix).

    Frames never attend to each other, so attention is chunk-exact. q/k/v/proj keep the
    released 1x1x1-conv parameter layout and run as one fused matmul over channels-last tokens.
    """

    def __init__(self, channels: int, norm_type: str) -> None:
        super().__init__()
        self.norm = make_norm(norm_type, channels, per_frame=False)
        self.q = CausalConv3d(channels, channels, kernel_size=1)
        self.k = CausalConv3d(channels, channels, kernel_size=1)
        self.v = CausalConv3d(channels, channels, kernel_size=1)
        self.proj_out = CausalConv3d(channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        b, c, t, h, w = x.shape
        if t == 0:
            return x
        if isinstance(self.norm, ChannelLayerNorm):  # normalise straight into channels-last tokens
            tokens = layer_norm_last(x.permute(0, 2, 3, 4, 1), self.norm.norm)
        else:
            tokens = self.norm(x, cache).permute(0, 2, 3, 4, 1)
        tokens = tokens.reshape(b * t, h * w, c)
        weight = torch.cat([m.conv.weight for m in (self.q, self.k, self.v)]).view(3 * c, c)
        bias = torch.cat([m.conv.bias for m in (self.q, self.k, self.v)])
        q, k, v = F.linear(tokens, weight, bias).chunk(3, dim=-1)
        attended = F.scaled_dot_product_attention(q, k, v)
        out = F.linear(attended, self.proj_out.conv.weight.view(c, c), self.proj_out.conv.bias)
        return x + out.view(b, t, h, w, c).permute(0, 4, 1, 2, 3)


class AlignStreams(nn.Module):
    """Pairs frames of two branches that, chunk by chunk, produce frames at different times.

    In the decoder one branch goes through a look-ahead interpolation and lags behind the
    other; the surplus of the leading branch waits here for the next chunk. Holds no weights.
    """

    def forward(self, a: torch.Tensor, b: torch.Tensor, cache: CausalCache) -> tuple[torch.Tensor, torch.Tensor]:
        held_a, held_b = cache.load(self, (None, None))
        if held_a is not None:
            a = torch.cat([held_a, a], dim=2)
        if held_b is not None:
            b = torch.cat([held_b, b], dim=2)
        n = min(a.shape[2], b.shape[2])
        if cache.closing:
            if a.shape[2] != b.shape[2]:
                raise RuntimeError(f"decoder branches ended with {a.shape[2]} and {b.shape[2]} frames")
        else:
            cache.store(self, tuple(s[:, :, n:].clone() if s.shape[2] > n else None for s in (a, b)))
        return a[:, :, :n], b[:, :, :n]
