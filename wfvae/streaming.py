"""Encode and decode clips of any length in memory bounded by the chunk size.

Both drivers feed the network frame 0 alone, then chunks of ``chunk_frames``, carrying a
Causal Cache between calls. Because every layer is causal (and the decoder's look-ahead
is held back by the cache), the result equals one call over the whole clip.
"""

from __future__ import annotations

import math
import mmap
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


def _outside_heap(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """A CPU tensor in an anonymous memory mapping of its own, unmapped when the tensor is freed.

    A long-lived tensor from malloc may sit in the heap among a push's short-lived activations
    and keep the heap from shrinking past it; a mapping of its own never does.
    """
    count = math.prod(shape)
    mapping = mmap.mmap(-1, max(count * dtype.itemsize, 1))
    return torch.frombuffer(mapping, dtype=dtype, count=count).view(shape)


class _MomentStore:
    """Moments kept for ``close()``, in one tensor that grows by doubling and is filled in place.

    Why not a list of each push's results: on CPU those small tensors land in glibc's heap between
    the push's large, freed activations and stop it from giving that memory back, so a long
    clip's resident memory grew by megabytes a push. On CPU the tensor is mapped outside the heap.
    """

    def __init__(self) -> None:
        self._moments: torch.Tensor | None = None
        self._frames = 0

    def __bool__(self) -> bool:
        return self._moments is not None

    def add(self, moments: torch.Tensor) -> None:
        count = moments.shape[2]
        if self._moments is None or self._frames + count > self._moments.shape[2]:
            self._grow(moments, self._frames + count)
        self._moments[:, :, self._frames:self._frames + count].copy_(moments)
        self._frames += count

    def _grow(self, like: torch.Tensor, needed: int) -> None:
        capacity = max(needed, 2 * (0 if self._moments is None else self._moments.shape[2]), 8)
        b, c, _, h, w = like.shape
        shape = (b, c, capacity, h, w)
        grown = _outside_heap(shape, like.dtype) if like.device.type == "cpu" else \
            torch.empty(shape, device=like.device, dtype=like.dtype)
        if self._frames:
            grown[:, :, :self._frames].copy_(self._moments[:, :, :self._frames])
        self._moments = grown

    def take(self) -> torch.Tensor | None:
        """Everything kept, in a tensor of its own size (the store is emptied)."""
        moments, frames = self._moments, self._frames
        self._moments, self._frames = None, 0
        if moments is None:
            return None
        return moments if moments.shape[2] == frames else moments[:, :, :frames].clone()


class _ChunkedStream:
    """What both drivers share: one clip's cache, its buffered input, and the chunk schedule."""

    def __init__(self, vae: "WFVAE", chunk_frames: int) -> None:
        self._vae = vae
        self._chunk = chunk_frames
        self._cache = CausalCache()
        self._pending = _FrameBuffer()
        self._done = 0  # frames already run through the network
        self._geometry: tuple[int, int, int] | None = None
        self._closed = False

    def _network(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        raise NotImplementedError

    def _check(self, x: torch.Tensor) -> None:
        raise NotImplementedError

    def _accept(self, x: torch.Tensor) -> None:
        if self._closed:
            raise RuntimeError(f"this {type(self).__name__} is closed; start a new one for the next clip")
        self._check(x)
        b, _, _, h, w = x.shape
        if self._geometry is None:
            self._geometry = (b, h, w)
        elif self._geometry != (b, h, w):
            raise ValueError(f"pushed a tensor of batch/size {(b, h, w)} after {self._geometry}: one clip per stream")
        self._pending.append(x)

    def _run_ready(self, keep: int) -> list[torch.Tensor]:
        """Runs frame 0 alone, then whole chunks, leaving at least ``keep`` frames pending."""
        outputs = []
        while len(self._pending) >= (need := 1 if self._done == 0 else self._chunk) + keep:
            outputs.append(self._run(self._pending.take(need)))
            self._done += need
        self._pending.detach_from_caller()
        return outputs

    def _run_rest(self) -> torch.Tensor | None:
        """The closing call: whatever is pending, with the clip-end rules."""
        if self._closed:
            raise RuntimeError(f"this {type(self).__name__} is already closed")
        self._closed = True
        if not len(self._pending):
            return None
        self._cache.closing = True
        return self._run(self._pending.take(len(self._pending)))

    def _run(self, piece: torch.Tensor) -> torch.Tensor:
        return self._network(self._vae.prepare_input(piece), self._cache)


class StreamEncoder(_ChunkedStream):
    """``push(frames)`` returns the posterior of every latent frame that is final so far;
    ``close()`` checks the clip length and returns the rest.

    ``feed(frames)`` is ``push`` for a caller that wants the whole clip's posterior at the end:
    it keeps the latents itself and ``close()`` returns them with the rest (each latent frame is
    handed out once, by ``push`` or by ``close``). Prefer it to gathering ``push`` results: it
    keeps resident memory flat however long the clip (see ``_MomentStore``).

    Frames may be pushed in any grouping; the clip as a whole must have 1 + a multiple of
    the temporal compression frames. Peak memory is set by ``chunk_frames``, not clip length.
    """

    def __init__(self, vae: "WFVAE", chunk_frames: int) -> None:
        super().__init__(vae, check_encode_chunk(chunk_frames, vae.temporal_compression))
        self._kept = _MomentStore()  # what feed() ran, for close()

    def _network(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        return self._vae.encoder(x, cache)

    @property
    def frames_pushed(self) -> int:
        return self._done + len(self._pending)

    def _check(self, x: torch.Tensor) -> None:
        check_video(x, self._vae.temporal_compression, whole_clip=False)

    @torch.inference_mode()
    def push(self, frames: torch.Tensor) -> DiagonalGaussian:
        self._accept(frames)
        return self._posterior(self._run_ready(keep=0))

    @torch.inference_mode()
    def feed(self, frames: torch.Tensor) -> None:
        self._accept(frames)
        for moments in self._run_ready(keep=0):
            self._kept.add(moments)

    @torch.inference_mode()
    def close(self) -> DiagonalGaussian:
        tc, total = self._vae.temporal_compression, self.frames_pushed
        if not self._closed:
            if total == 0:
                raise ValueError("no frames were pushed to this StreamEncoder")
            if (total - 1) % tc:
                self._closed = True
                raise ValueError(f"the clip has {total} frames; this WF-VAE encodes 1 + a multiple of {tc} "
                                 f"frames, so the last {(total - 1) % tc} frame(s) cannot form a latent frame")
        rest = self._run_rest()
        if rest is not None and self._kept:
            self._kept.add(rest)
            rest = None
        kept = self._kept.take()
        return self._posterior([m for m in (kept, rest) if m is not None])

    def _posterior(self, moments: list[torch.Tensor]) -> DiagonalGaussian:
        if moments:
            return DiagonalGaussian.from_moments(torch.cat(moments, dim=2) if len(moments) > 1 else moments[0])
        b, h, w = self._geometry or (1, 8, 8)
        s = self._vae.spatial_compression
        empty = torch.empty(b, 2 * self._vae.latent_channels, 0, h // s, w // s,
                            device=self._vae.device, dtype=self._vae.dtype)
        return DiagonalGaussian.from_moments(empty)


class StreamDecoder(_ChunkedStream):
    """``push(latents)`` returns the video frames decoded so far; ``close()`` the rest.

    The last pushed latent frame is kept back until ``close()``, which runs it with the
    clip-end rule of the temporal interpolation (the reference's full-clip behaviour).
    """

    def __init__(self, vae: "WFVAE", chunk_frames: int) -> None:
        super().__init__(vae, check_decode_chunk(chunk_frames))

    def _network(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        return self._vae.decoder(x, cache)

    def _check(self, x: torch.Tensor) -> None:
        check_latents(x, self._vae.latent_channels)

    @torch.inference_mode()
    def push(self, latents: torch.Tensor) -> torch.Tensor:
        self._accept(latents)
        frames = self._run_ready(keep=1)
        if frames:
            return torch.cat(frames, dim=2) if len(frames) > 1 else frames[0]
        b, h, w = self._geometry
        s = self._vae.spatial_compression
        return torch.empty(b, 3, 0, h * s, w * s, device=self._vae.device, dtype=self._vae.dtype)

    @torch.inference_mode()
    def close(self) -> torch.Tensor:
        if not self._closed and not len(self._pending):
            raise ValueError("no latents were pushed to this StreamDecoder")
        rest = self._run_rest()
        assert rest is not None
        return rest
