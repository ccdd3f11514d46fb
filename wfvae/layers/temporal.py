"""Streaming helpers for layers that look across frames (dim 2 of B,C,T,H,W)."""

from __future__ import annotations

import torch

from ..cache import CausalCache


def causal_windows(owner: torch.nn.Module, x: torch.Tensor, cache: CausalCache,
                   kernel: int, stride: int) -> torch.Tensor:
    """Frames for a temporally unpadded convolution that sees the clip as one stream.

    At the clip start the stream is padded with ``kernel - 1`` copies of frame 0 (WF-VAE's
    causal padding); later chunks are prefixed with the frames earlier chunks left
    unconsumed. Returns exactly the frames the valid windows need and keeps the rest in
    the cache, so chunked calls compute the same windows as one call over the clip.
    """
    if kernel == 1 and stride == 1:
        return x
    if cache.starts_clip(owner):
        head = x[:, :, :1].expand(-1, -1, kernel - 1, -1, -1)
    else:
        head = cache.load(owner)
    stream = torch.cat([head, x], dim=2) if head.shape[2] else x
    length = stream.shape[2]
    windows = (length - kernel) // stride + 1 if length >= kernel else 0
    consumed = windows * stride
    if not cache.closing:
        cache.store(owner, stream[:, :, consumed:].clone())
    if windows == 0:
        return stream[:, :, :0]
    return stream[:, :, : consumed - stride + kernel]


def empty_frames(x: torch.Tensor, channels: int, height: int, width: int) -> torch.Tensor:
    """A zero-frame result, for calls whose input completes no output window."""
    return x.new_empty(x.shape[0], channels, 0, height, width)
