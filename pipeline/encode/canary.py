"""A quality canary: every Nth clip is decoded again on the encoder's device and compared with
its source frames (PSNR, uint8 RGB, peak 255).

Latents cannot be checked by looking at them. A wrong model, a colour-range mistake ([0, 1]
instead of [-1, 1]) or a broken source still produce latents of the right shape; decoding a few
shows it in the first shard instead of after weeks of training. The decoded latent is the
*stored* one (after conversion to the output's precision), so the check covers what training
will read. A shard's results travel in its commit record (``pipeline.output.quality``) and merge
across records: the summary reports the mean, the minimum and the worst clips.

The job decodes each checked clip alone (``batch_size=1``): batches of the same shape decode at
half the per-clip cost with a small model on CPU, but not with WF-VAE-L (bench/canary.py), and a
decoder batch needs more device memory than the encoder's.

Whole-video clips streamed through the Causal Cache in pieces are not checked (their frames are
never held at once).
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from ..output.quality import CanaryResults

if TYPE_CHECKING:
    import torch

_MSE_FLOOR = 1e-10  # identical clips: ~148 dB instead of infinity, so records stay plain JSON


class QualityCanary:
    """Holds the model and the rule; ``for_shard`` gives the checker of one shard attempt."""

    def __init__(self, vae: Any, every: int, latent_dtype: torch.dtype | None = None,
                 chunk_frames: int | None = None, batch_size: int = 1) -> None:
        """``vae`` a wfvae.WFVAE; ``latent_dtype`` the stored precision; ``chunk_frames`` latent frames
        per decoder call (None: whole clip); ``batch_size`` checked clips of one latent shape decoded
        together."""
        for name, value in (("every", every), ("batch_size", batch_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"the quality canary's {name} must be a positive integer, got {value!r}")
        self.vae, self.every, self.latent_dtype = vae, every, latent_dtype
        self.chunk_frames, self.batch_size = chunk_frames, batch_size

    def for_shard(self) -> "ShardCanary":
        return ShardCanary(self)

    def psnr(self, frames: np.ndarray, mean: torch.Tensor) -> float:
        """PSNR in dB of the decoded ``mean`` (C, t, h, w) against the source ``frames`` (T, H, W, 3) uint8."""
        return self.psnrs([frames], mean[None])[0]

    def psnrs(self, frames: list[np.ndarray], means: torch.Tensor) -> list[float]:
        """PSNR of each of a batch of latents ``means`` (B, C, t, h, w) against its source frames,
        decoded together and computed on the model's device."""
        import torch

        with torch.inference_mode():
            latents = means if self.latent_dtype is None else means.to(self.latent_dtype)
            decoded = self.vae.decode(latents.to(self.vae.device, self.vae.dtype), chunk_frames=self.chunk_frames)
            pixels = decoded.float().clamp_(-1, 1).add_(1).mul_(127.5).round_()  # as uint8 frames would hold
            values = []
            for clip, source_frames in zip(pixels, frames, strict=True):
                # a copy: frames fetched from Ray's object store are read-only, which torch warns about
                source = torch.from_numpy(np.array(source_frames, dtype=np.uint8)).to(clip.device)
                source = source.permute(3, 0, 1, 2).float()
                length = min(source.shape[1], clip.shape[1])
                if source.shape[0] != 3 or source.shape[2:] != clip.shape[2:] or length < 1:
                    raise ValueError(f"source frames {tuple(source_frames.shape)} do not match the decoded clip "
                                     f"{tuple(clip.shape)} (expected (T, H, W, 3) uint8 of the encoded clip)")
                mse = float((source[:, :length] - clip[:, :length]).square().mean())
                values.append(10.0 * math.log10(255.0 ** 2 / max(mse, _MSE_FLOOR)))
        return values


class ShardCanary:
    """The checks of one shard attempt: ``observe`` every encoded clip, ``finish`` at the end.

    Clips to check wait (as copies, with their latents) until ``batch_size`` of one latent shape
    are pending, then decode together; ``finish`` decodes the rest."""

    def __init__(self, canary: QualityCanary) -> None:
        self.canary = canary
        self.results = CanaryResults(every=canary.every)
        self._pending: dict[tuple[int, ...], list[tuple[str, int, np.ndarray, torch.Tensor]]] = {}

    def observe(self, key: str, clip: int, frames: np.ndarray, mean: torch.Tensor) -> None:
        """Queue this clip if it is the first, or an ``every``-th one, of the shard."""
        self.results.seen += 1
        if (self.results.seen - 1) % self.canary.every:
            return
        group = self._pending.setdefault(tuple(mean.shape), [])
        group.append((key, clip, np.array(frames, dtype=np.uint8), mean.detach().clone()))
        if len(group) >= self.canary.batch_size:
            self._check(self._pending.pop(tuple(mean.shape)))

    def finish(self) -> CanaryResults:
        for shape in list(self._pending):
            self._check(self._pending.pop(shape))
        return self.results

    def _check(self, group: list[tuple[str, int, np.ndarray, torch.Tensor]]) -> None:
        import torch

        began = time.perf_counter()
        frames, means = [f for _, _, f, _ in group], torch.stack([m for *_, m in group])
        try:
            values = self.canary.psnrs(frames, means)
        except torch.OutOfMemoryError:  # the decoder needs more than the encoder: never fail a shard for it
            torch.cuda.empty_cache()
            values = [self.canary.psnr(f, m) for f, m in zip(frames, means)]
        for (key, clip, _, _), value in zip(group, values):
            self.results.add(key, clip, value)
        self.results.seconds += time.perf_counter() - began
