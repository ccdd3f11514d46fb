"""Down- and up-sampling blocks, named after the reference's config vocabulary."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..cache import CausalCache
from .conv import CausalConv3d, FrameConv2d


class Downsample(nn.Module):
    """Per-frame 2x spatial downsampling: pad right/bottom by one, 3x3 conv with stride 2."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = FrameConv2d(in_channels, out_channels, kernel_size=3, stride=2, padding=0)

    def forward(self, x: torch.Tensor, cache: CausalCache | None = None) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Per-frame 2x spatial upsampling: nearest neighbour, then 3x3 conv."""

    def __init__(self, in_channels: int, out_channels: int, t_interpolation: str = "trilinear") -> None:
        super().__init__()
        self.conv = FrameConv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1)

    def forward(self, x: torch.Tensor, cache: CausalCache | None = None) -> torch.Tensor:
        if x.shape[2]:
            x = F.interpolate(x, scale_factor=(1, 2, 2), mode="nearest")
        else:
            x = x.new_empty(*x.shape[:3], 2 * x.shape[3], 2 * x.shape[4])
        return self.conv(x)


class Spatial2xTime2x3DDownsample(nn.Module):
    """2x down in space and time: pad right/bottom by one, causal 3x3x3 conv with stride 2."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = CausalConv3d(in_channels, out_channels, kernel_size=3, stride=2, padding=0)

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)), cache)


class Spatial2xTime2x3DUpsample(nn.Module):
    """2x up in time (frame 0 stays single: T -> 2T - 1) and space, then a causal 3x3x3 conv.

    Trilinear time interpolation puts output 2j+1 between inputs j and j+1, so it looks one
    frame ahead: each chunk holds back its last frame until the next chunk (or the clip's
    end, where the reference clamps it to itself) arrives.
    """

    def __init__(self, in_channels: int, out_channels: int, t_interpolation: str = "trilinear") -> None:
        super().__init__()
        self.t_interpolation = t_interpolation
        self.conv = CausalConv3d(in_channels, out_channels, kernel_size=3, stride=1, padding=1)

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        x = self._upsample_time(x, cache)
        if x.shape[2]:
            x = F.interpolate(x, scale_factor=(1, 2, 2), mode="trilinear")
        else:
            x = x.new_empty(*x.shape[:3], 2 * x.shape[3], 2 * x.shape[4])
        return self.conv(x, cache)

    def _upsample_time(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        pieces = []
        if cache.starts_clip(self):
            pieces.append(x[:, :, :1])  # frame 0 is not interpolated
            x, held = x[:, :, 1:], None
        else:
            (held,) = cache.load(self)
        if self.t_interpolation == "nearest":
            pieces.append(x.repeat_interleave(2, dim=2))
        else:
            stream = x if held is None else torch.cat([held, x], dim=2)
            if held is None and x.shape[2]:
                pieces.append(x[:, :, :1])  # the first interpolated frame's left half clamps to itself
            if stream.shape[2] >= 2:
                left, right = stream[:, :, :-1], stream[:, :, 1:]
                between = torch.stack([torch.lerp(left, right, 0.25), torch.lerp(left, right, 0.75)], dim=3)
                pieces.append(between.flatten(2, 3))
            held = stream[:, :, -1:] if stream.shape[2] else None
            if cache.closing and held is not None:
                pieces.append(held)  # the last frame's right half clamps to itself
        if not cache.closing:
            cache.store(self, (None if held is None else held.clone(),))
        return torch.cat(pieces, dim=2) if len(pieces) > 1 else pieces[0] if pieces else x[:, :, :0]
