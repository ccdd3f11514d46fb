"""Convolutions over video tensors (B, C, T, H, W)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..cache import CausalCache
from .temporal import causal_windows, empty_frames


def _triple(value: int | tuple[int, int, int]) -> tuple[int, int, int]:
    return value if isinstance(value, tuple) else (value, value, value)


class CausalConv3d(nn.Module):
    """3D convolution that never looks at future frames.

    Time is padded causally (``kernel_t - 1`` copies of the clip's first frame) through the
    Causal Cache, space symmetrically by the inner ``conv``. The parameters live in
    ``self.conv`` so state-dict keys match the released checkpoints (``*.conv.weight``).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int, int],
                 stride: int | tuple[int, int, int] = 1, padding: int = 0, bias: bool = True) -> None:
        super().__init__()
        kernel_size, stride = _triple(kernel_size), _triple(stride)
        self.kernel_t, self.stride_t = kernel_size[0], stride[0]
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size, stride=stride,
                              padding=(0, padding, padding), bias=bias)

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        frames = causal_windows(self, x, cache, self.kernel_t, self.stride_t)
        if frames.shape[2] == 0:
            (kh, kw), (sh, sw), (ph, pw) = self.conv.kernel_size[1:], self.conv.stride[1:], self.conv.padding[1:]
            return empty_frames(x, self.conv.out_channels,
                                (x.shape[3] + 2 * ph - kh) // sh + 1, (x.shape[4] + 2 * pw - kw) // sw + 1)
        return self.conv(frames)


class FrameConv2d(nn.Conv2d):
    """A 2D convolution applied to every frame of a video independently.

    Keeps the released ``Conv2d`` parameter layout but runs as a (1, k, k) 3D convolution,
    which avoids transposing (B, C, T, H, W) into (B*T, C, H, W) and back.
    """

    def forward(self, x: torch.Tensor, cache: CausalCache | None = None) -> torch.Tensor:
        if x.dim() == 4:
            return super().forward(x)
        if x.shape[2] == 0:
            (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
            return empty_frames(x, self.out_channels, (x.shape[3] + 2 * ph - kh) // sh + 1,
                                (x.shape[4] + 2 * pw - kw) // sw + 1)
        return F.conv3d(x, self.weight.unsqueeze(2), self.bias, stride=(1, *self.stride),
                        padding=(0, *self.padding), dilation=(1, *self.dilation), groups=self.groups)
