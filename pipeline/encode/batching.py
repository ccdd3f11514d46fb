"""Turning decoded uint8 clips into model input, batched by shape, and latents back into host rows.

On a GPU the encoder never waits for a copy it does not need: pixels cross as uint8 (4x less
traffic than floats) from pinned memory without blocking, statistics stay on the device, and
a batch's latents come back in one copy that is only waited for after the next batch has been
queued. On CPU the same code runs synchronously.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..output.schema import LATENT_DTYPES
from ..output.stats import LatentStats


@dataclass
class PendingClip:
    """A decoded clip waiting for a batch; ``order`` restores input order when writing."""

    order: tuple[int, int]  # (sample number in the shard, clip index)
    info: Any  # pipeline.reading.ClipInfo
    frames: np.ndarray  # (T, H, W, 3) uint8


def images_per_batch(batch_size: int, num_frames: int, temporal_compression: int) -> int:
    """As many images as a batch of ``batch_size`` video clips has latent frames. An image encodes to one latent
    frame and costs about what one latent frame of a clip costs (measured, demo model on CPU: an image 34 ms, a
    17-frame clip of 5 latent frames 208 ms; a batch of 20 images held 520 MiB, one of 4 such clips 662 MiB),
    so the image batch does about the video batch's work in no more memory (docs/benchmarks.md, Images)."""
    return batch_size * (1 + (num_frames - 1) // temporal_compression)


class ClipBatcher:
    """Collects clips and releases batches of one media type and shape: up to ``batch_size`` video clips, or
    ``image_batch_size`` images (one-frame clips, each a fraction of a video clip's work)."""

    def __init__(self, batch_size: int, image_batch_size: int | None = None) -> None:
        self.sizes = {"video": batch_size, "image": image_batch_size or batch_size}
        self._groups: dict[tuple, list[PendingClip]] = defaultdict(list)

    def add(self, clip: PendingClip) -> list[PendingClip] | None:
        key = (clip.info.media_type, clip.frames.shape)
        group = self._groups[key]
        group.append(clip)
        if len(group) >= self.sizes[clip.info.media_type]:
            del self._groups[key]
            return group
        return None

    def drain(self) -> list[list[PendingClip]]:
        batches = list(self._groups.values())
        self._groups.clear()
        return batches

    def __len__(self) -> int:
        return sum(len(group) for group in self._groups.values())


def to_video(frames: np.ndarray | list[np.ndarray], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(T, H, W, 3) uint8 frames (or a list of same-shaped clips) -> (B, 3, T, H, W) in [-1, 1].

    On CUDA the clips are copied once, straight into a pinned buffer (PyTorch's caching host
    allocator reuses it once the copy is done), and cross to the device without blocking.
    """
    clips = frames if isinstance(frames, list) else [frames]
    if device.type == "cuda":
        staging = torch.empty((len(clips), *clips[0].shape), dtype=torch.uint8, pin_memory=True)
        host = staging.numpy()
        for index, clip in enumerate(clips):
            np.copyto(host[index], clip)
        pixels = staging.to(device, non_blocking=True)
    else:
        pixels = torch.from_numpy(np.stack(clips))
    return pixels.permute(0, 4, 1, 2, 3).to(dtype).div_(127.5).sub_(1.0)


class DeviceStats:
    """Per-channel sums of latents, kept on the latents' device (no synchronisation per clip)."""

    def __init__(self) -> None:
        self.count = 0
        self._sum: torch.Tensor | None = None
        self._sum_sq: torch.Tensor | None = None

    def add(self, latents: torch.Tensor) -> None:
        """latents (B, C, t, h, w)."""
        values = latents.detach().to(torch.float64).transpose(0, 1).reshape(latents.shape[1], -1)
        sums, squares = values.sum(dim=1), values.square().sum(dim=1)
        self._sum = sums if self._sum is None else self._sum + sums
        self._sum_sq = squares if self._sum_sq is None else self._sum_sq + squares
        self.count += values.shape[1]

    def to_stats(self) -> LatentStats:
        if self._sum is None:
            return LatentStats()
        return LatentStats(self.count, self._sum.tolist(), self._sum_sq.tolist())


class HostLatents:
    """One batch's latents on their way to the host: one copy per batch, waited for when needed."""

    def __init__(self, items: list[tuple[tuple[int, int], Any]], mean: torch.Tensor, logvar: torch.Tensor | None,
                 latent_dtype: str) -> None:
        self.items = items  # (order, ClipInfo) per row of the batch
        dtype = LATENT_DTYPES[latent_dtype]
        self._event = None
        if mean.device.type == "cuda":
            self.mean = _to_pinned(mean.to(dtype))
            self.logvar = None if logvar is None else _to_pinned(logvar.to(dtype))
            self._event = torch.cuda.Event()
            self._event.record()
        else:
            self.mean = mean.to(dtype)
            self.logvar = None if logvar is None else logvar.to(dtype)

    def wait(self) -> None:
        if self._event is not None:
            self._event.synchronize()
            self._event = None


def _to_pinned(tensor: torch.Tensor) -> torch.Tensor:
    host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
    host.copy_(tensor, non_blocking=True)
    return host
