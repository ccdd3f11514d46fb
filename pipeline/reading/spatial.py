"""Output size: fixed resolution or aspect-ratio buckets, resize to cover, center-crop.

Sizes are (height, width) in display orientation. All per-pixel work is done by
C code: the decoder's scaler, numpy slicing, or torch's antialiased interpolate.
"""

from __future__ import annotations

import math

import numpy as np

from .config import ReadConfig


def output_size(height: int, width: int, config: ReadConfig) -> tuple[int, int]:
    """The fixed resolution, or the bucket nearest in log-aspect (the first one on a tie)."""
    if config.resolution is not None:
        return config.resolution
    return nearest_bucket(height, width, config.buckets)


def nearest_bucket(height: int, width: int, buckets: tuple[tuple[int, int], ...]) -> tuple[int, int]:
    aspect = math.log(width / height)
    return min(buckets, key=lambda hw: abs(math.log(hw[1] / hw[0]) - aspect))


def cover_size(height: int, width: int, out_h: int, out_w: int) -> tuple[int, int]:
    """The smallest aspect-preserving size that covers (out_h, out_w)."""
    scale = max(out_h / height, out_w / width)
    return max(out_h, round(height * scale)), max(out_w, round(width * scale))


def cover_box(height: int, width: int, out_h: int, out_w: int) -> tuple[float, float, float, float]:
    """The centred window of a (height, width) picture that resizing to cover (out_h, out_w) and
    centre-cropping keeps: (left, top, right, bottom) in the picture's pixels, fractions exact.

    Resizing this window straight to (out_h, out_w) gives the cover-and-crop result without the
    cover-sized picture in between, which for a 1 x 10,000 image would be 256 x 2,560,000 pixels.
    """
    scale = max(out_h / height, out_w / width)
    box_h, box_w = out_h / scale, out_w / scale
    top, left = (height - box_h) / 2, (width - box_w) / 2
    return left, top, left + box_w, top + box_h


def center_crop(frames: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """A view of the centered (out_h, out_w) window of (n, h, w, c) frames."""
    h, w = frames.shape[1:3]
    top, left = (h - out_h) // 2, (w - out_w) // 2
    return frames[:, top : top + out_h, left : left + out_w]


def rotate(frames: np.ndarray, rotation: int) -> np.ndarray:
    """A view of (n, h, w, c) frames turned counter-clockwise by `rotation` degrees."""
    return np.rot90(frames, k=rotation // 90, axes=(1, 2)) if rotation else frames


def resize(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Antialiased bilinear resize of (n, h, w, 3) uint8 frames, with torch.

    Works on uint8 in channels-last layout, which torch has a vectorized kernel
    for (about 20x faster here than going through float32, within 1 level of it).
    torch is imported here, not at module level: decode workers usually scale in the
    decoder and never need it, and importing it costs each new worker ~2 s.
    """
    if frames.shape[1:3] == (height, width):
        return frames
    import torch

    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # a channels-last view
    y = torch.nn.functional.interpolate(x, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return y.permute(0, 2, 3, 1).contiguous().numpy()


def cover_window(
    stored_h: int, stored_w: int, pixel_aspect: float, rotation: int, out_h: int, out_w: int
) -> tuple[int, int, int, int]:
    """The centered window of a stored frame that a cover-resize to (out_h, out_w) keeps.

    Returned as (x, y, width, height) in stored pixels, so the decoder can crop
    first and scale only what is kept. (out_h, out_w) is in display orientation.
    """
    if rotation in (90, 270):
        out_h, out_w = out_w, out_h
    scale = max(out_h / stored_h, out_w / (stored_w * pixel_aspect))
    height = min(stored_h, max(1, round(out_h / scale)))
    width = min(stored_w, max(1, round(out_w / (scale * pixel_aspect))))
    return (stored_w - width) // 2, (stored_h - height) // 2, width, height
