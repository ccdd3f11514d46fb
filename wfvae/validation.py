"""Input checks with errors that say what is wrong and what is allowed.

The reference silently truncates clips whose frame count or size does not fit the
compression factors; a latent cache built that way quietly loses frames, so we refuse.
"""

from __future__ import annotations

import torch


def valid_frame_counts(temporal_compression: int, near: int) -> str:
    below = 1 + max(0, (near - 1) // temporal_compression) * temporal_compression
    return f"{below} or {below + temporal_compression}" if below < near else str(below)


def check_video(video: torch.Tensor, temporal_compression: int, *, whole_clip: bool = True) -> None:
    """(B, 3, T, H, W) float in [-1, 1]; T = 1 + k * temporal_compression when ``whole_clip``."""
    if not isinstance(video, torch.Tensor):
        raise TypeError(f"video must be a torch.Tensor of shape (B, 3, T, H, W), got {type(video).__name__}")
    if video.dim() != 5:
        raise ValueError(f"video must have shape (B, 3, T, H, W), got {tuple(video.shape)}"
                         + (" (add a batch dimension with video[None])" if video.dim() == 4 else ""))
    if not video.is_floating_point():
        raise ValueError(f"video must be floating point in [-1, 1], got {video.dtype} "
                         "(convert uint8 frames with frames / 127.5 - 1)")
    b, c, t, h, w = video.shape
    if c != 3:
        raise ValueError(f"video must have 3 (RGB) channels in dim 1, got {c} (shape {tuple(video.shape)}; "
                         "expected (B, 3, T, H, W), channels before time)")
    if b < 1:
        raise ValueError("video batch is empty")
    if h < 8 or w < 8 or h % 8 or w % 8:
        raise ValueError(f"video height and width must be positive multiples of 8 (the spatial compression), "
                         f"got {h}x{w}")
    if whole_clip and (t < 1 or (t - 1) % temporal_compression):
        raise ValueError(f"video has {t} frames; this WF-VAE ({temporal_compression}x temporal compression) "
                         f"encodes 1 + a multiple of {temporal_compression} frames "
                         f"(1, {1 + temporal_compression}, {1 + 2 * temporal_compression}, ...); "
                         f"nearest valid: {valid_frame_counts(temporal_compression, max(t, 1))}")


def check_latents(latents: torch.Tensor, latent_channels: int) -> None:
    if not isinstance(latents, torch.Tensor):
        raise TypeError(f"latents must be a torch.Tensor of shape (B, C, t, h, w), got {type(latents).__name__}")
    if latents.dim() != 5:
        raise ValueError(f"latents must have shape (B, {latent_channels}, t, h, w), got {tuple(latents.shape)}")
    if not latents.is_floating_point():
        raise ValueError(f"latents must be floating point, got {latents.dtype}")
    if latents.shape[1] != latent_channels:
        raise ValueError(f"latents must have {latent_channels} channels in dim 1, got shape {tuple(latents.shape)}")
    if latents.shape[0] < 1 or latents.shape[3] < 1 or latents.shape[4] < 1:
        raise ValueError(f"latents must not be empty, got shape {tuple(latents.shape)}")


def check_encode_chunk(chunk_frames: object, temporal_compression: int) -> int:
    if isinstance(chunk_frames, bool) or not isinstance(chunk_frames, int) or chunk_frames < temporal_compression \
            or chunk_frames % temporal_compression:
        raise ValueError(f"chunk_frames must be a positive multiple of the temporal compression "
                         f"({temporal_compression}: {temporal_compression}, {2 * temporal_compression}, ...), "
                         f"got {chunk_frames!r}")
    return chunk_frames


def check_decode_chunk(chunk_frames: object) -> int:
    if isinstance(chunk_frames, bool) or not isinstance(chunk_frames, int) or chunk_frames < 1:
        raise ValueError(f"chunk_frames for decoding counts latent frames and must be a positive integer, "
                         f"got {chunk_frames!r}")
    return chunk_frames
