"""Encode and decode clips of any length in memory bounded by the chunk size.

Both drivers feed the network frame 0 alone, then chunks of ``chunk_frames``, carrying a
Causal Cache between calls. Because every layer is causal (and the decoder's look-ahead
is held back by the cache), the result equals one call over the whole clip.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .cache import CausalCache
from .posterior import DiagonalGaussian
from .validation import check_decode_chunk, check_encode_chunk, check_latents, check_video

if TYPE_CHECKING:
    from .model import WFVAE


class _FrameBuffer:
    """Frames received but not yet run through the network (never more than one chunk)."""

    def __init__(self) -> None:
        self.frames: torch.Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.frames is None else self.frames.shape[2]

    def append(self, frames: torch.Tensor) -> None:
        if frames.shape[2]:
            self.frames = frames if self.frames is None else torch.cat([self.frames, frames], dim=2)

    def take(self, count: int) -> torch.Tensor:
        assert self.frames is not None
        piece, rest = self.frames[:, :, :count], self.frames[:, :, count:]
        self.frames = rest if rest.shape[2] else None
        return piece

    def detach_from_caller(self) -> None:
        """Copy what is left so a caller's large pushed tensor can be freed."""
        if self.frames is not None:
            self.frames = self.frames.clone()


class StreamEncoder:
    """``push(frames)`` returns the posterior of every latent frame that is final so far;
    ``close()`` checks the clip length and returns the rest.

    Frames may be pushed in any grouping; the clip as a whole must have 1 + a multiple of
    the temporal compression frames. Peak memory is set by ``chunk_frames``, not clip length.
    """

    def __init__(self, vae: "WFVAE", chunk_frames: int) -> None:
        self._vae = vae
        self._chunk = check_encode_chunk(chunk_frames, vae.temporal_compression)
        self._cache = CausalCache()
        self._pending = _FrameBuffer()
        self._encoded = 0  # frames already run through the encoder
        self._geometry: tuple[int, int, int] | None = None
        self._closed = False

    @property
    def frames_pushed(self) -> int:
        return self._encoded + len(self._pending)

    @torch.inference_mode()
    def push(self, frames: torch.Tensor) -> DiagonalGaussian:
        self._check(frames)
        self._pending.append(frames)
        moments = []
        while len(self._pending) >= (need := 1 if self._encoded == 0 else self._chunk):
            moments.append(self._run(self._pending.take(need)))
            self._encoded += need
        self._pending.detach_from_caller()
        return self._posterior(moments)

    @torch.inference_mode()
    def close(self) -> DiagonalGaussian:
        if self._closed:
            raise RuntimeError("this StreamEncoder is already closed")
        self._closed = True
        tc, total = self._vae.temporal_compression, self.frames_pushed
        if total == 0:
            raise ValueError("no frames were pushed to this StreamEncoder")
        if (total - 1) % tc:
            raise ValueError(f"the clip has {total} frames; this WF-VAE encodes 1 + a multiple of {tc} "
                             f"frames, so the last {(total - 1) % tc} frame(s) cannot form a latent frame")
        moments = []
        if len(self._pending):
            self._cache.closing = True
            moments.append(self._run(self._pending.take(len(self._pending))))
        return self._posterior(moments)

    def _check(self, frames: torch.Tensor) -> None:
        if self._closed:
            raise RuntimeError("this StreamEncoder is closed; start a new one for the next clip")
        check_video(frames, self._vae.temporal_compression, whole_clip=False)
        b, _, _, h, w = frames.shape
        if self._geometry is None:
            self._geometry = (b, h, w)
        elif self._geometry != (b, h, w):
            raise ValueError(f"pushed frames of batch/size {(b, h, w)} after {self._geometry}: one clip per stream")

    def _run(self, piece: torch.Tensor) -> torch.Tensor:
        return self._vae.encoder(self._vae.prepare_input(piece), self._cache)

    def _posterior(self, moments: list[torch.Tensor]) -> DiagonalGaussian:
        if moments:
            return DiagonalGaussian.from_moments(torch.cat(moments, dim=2) if len(moments) > 1 else moments[0])
        b, h, w = self._geometry or (1, 8, 8)
        s = self._vae.spatial_compression
        empty = torch.empty(b, 2 * self._vae.latent_channels, 0, h // s, w // s,
                            device=self._vae.device, dtype=self._vae.dtype)
        return DiagonalGaussian.from_moments(empty)


class StreamDecoder:
    """``push(latents)`` returns the video frames decoded so far; ``close()`` the rest.

    The last pushed latent frame is kept back until ``close()``, which runs it with the
    clip-end rule of the temporal interpolation (the reference's full-clip behaviour).
    """

    def __init__(self, vae: "WFVAE", chunk_frames: int) -> None:
        self._vae = vae
        self._chunk = check_decode_chunk(chunk_frames)
        self._cache = CausalCache()
        self._pending = _FrameBuffer()
        self._decoded = 0
        self._geometry: tuple[int, int, int] | None = None
        self._closed = False

    @torch.inference_mode()
    def push(self, latents: torch.Tensor) -> torch.Tensor:
        self._check(latents)
        self._pending.append(latents)
        frames = []
        while len(self._pending) > (need := 1 if self._decoded == 0 else self._chunk):
            frames.append(self._run(self._pending.take(need)))
            self._decoded += need
        self._pending.detach_from_caller()
        return self._video(frames)

    @torch.inference_mode()
    def close(self) -> torch.Tensor:
        if self._closed:
            raise RuntimeError("this StreamDecoder is already closed")
        self._closed = True
        if not len(self._pending):
            raise ValueError("no latents were pushed to this StreamDecoder")
        self._cache.closing = True
        return self._run(self._pending.take(len(self._pending)))

    def _check(self, latents: torch.Tensor) -> None:
        if self._closed:
            raise RuntimeError("this StreamDecoder is closed; start a new one for the next clip")
        check_latents(latents, self._vae.latent_channels)
        b, _, _, h, w = latents.shape
        if self._geometry is None:
            self._geometry = (b, h, w)
        elif self._geometry != (b, h, w):
            raise ValueError(f"pushed latents of batch/size {(b, h, w)} after {self._geometry}: one clip per stream")

    def _run(self, piece: torch.Tensor) -> torch.Tensor:
        return self._vae.decoder(self._vae.prepare_input(piece), self._cache)

    def _video(self, frames: list[torch.Tensor]) -> torch.Tensor:
        if frames:
            return torch.cat(frames, dim=2) if len(frames) > 1 else frames[0]
        b, h, w = self._geometry
        s = self._vae.spatial_compression
        return torch.empty(b, 3, 0, h * s, w * s, device=self._vae.device, dtype=self._vae.dtype)
