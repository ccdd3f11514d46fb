"""Turning decoded uint8 clips into model input, batched by shape."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass
class PendingClip:
    """A decoded clip waiting for a batch; ``order`` restores input order when writing."""

    order: tuple[int, int]  # (sample number in the shard, clip index)
    info: Any  # pipeline.reading.ClipInfo
    frames: np.ndarray  # (T, H, W, 3) uint8


class ClipBatcher:
    """Collects clips and releases batches of up to ``batch_size`` clips of one shape."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self._groups: dict[tuple[int, ...], list[PendingClip]] = defaultdict(list)

    def add(self, clip: PendingClip) -> list[PendingClip] | None:
        group = self._groups[clip.frames.shape]
        group.append(clip)
        if len(group) >= self.batch_size:
            del self._groups[clip.frames.shape]
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

    The uint8 pixels cross to the device first (4x less traffic than floats), then convert.
    """
    stacked = np.stack(frames) if isinstance(frames, list) else frames[None]
    pixels = torch.from_numpy(stacked)
    if device.type == "cuda":
        pixels = pixels.pin_memory().to(device, non_blocking=True)
    return pixels.permute(0, 4, 1, 2, 3).to(dtype).div_(127.5).sub_(1.0)
