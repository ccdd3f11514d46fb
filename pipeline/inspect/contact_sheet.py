"""A PNG contact sheet: per clip, a row of source frames above the decoded frames at the same
indices, under a title with the clip's key and PSNR. The geometry is returned with the image
so a test (or a tool) can find every tile."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .psnr import format_psnr

MARGIN, GAP, CLIP_GAP = 8, 4, 14
LABEL_WIDTH, TITLE_HEIGHT, FONT_SIZE = 76, 22, 13
BACKGROUND, INK = (246, 246, 246), (25, 25, 25)

Box = tuple[int, int, int, int]  # left, top, right, bottom (PIL's crop box)


@dataclass
class SheetClip:
    key: str
    clip: int
    psnr: float  # over the whole clip
    frame_indices: list[int]  # clip frames shown
    source: np.ndarray  # (K, H, W, 3) uint8, the frames at frame_indices
    decoded: np.ndarray  # (K, H, W, 3) uint8

    @property
    def title(self) -> str:
        shown = ", ".join(map(str, self.frame_indices))
        return f"{self.key}  clip {self.clip}  PSNR {format_psnr(self.psnr)}  frames {shown}"


@dataclass
class ContactSheet:
    image: Image.Image
    source_boxes: list[list[Box]] = field(default_factory=list)  # per clip, per frame shown
    decoded_boxes: list[list[Box]] = field(default_factory=list)


def compose(clips: list[SheetClip], tile_height: int | None = 128) -> ContactSheet:
    """``tile_height`` None shows frames at their own size; else scales them to that height."""
    if not clips:
        raise ValueError("a contact sheet needs at least one clip")
    font = ImageFont.load_default(size=FONT_SIZE)
    tiles = [_tile_size(clip.source.shape[1:3], tile_height) for clip in clips]
    widths = [LABEL_WIDTH + len(c.frame_indices) * (w + GAP) - GAP for c, (_, w) in zip(clips, tiles)]
    titles = [font.getlength(clip.title) for clip in clips]
    width = 2 * MARGIN + int(max(max(widths), max(titles)))
    height = MARGIN + sum(TITLE_HEIGHT + 2 * h + GAP + CLIP_GAP for h, _ in tiles) - CLIP_GAP + MARGIN
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    sheet = ContactSheet(image)
    top = MARGIN
    for clip, (tile_h, tile_w) in zip(clips, tiles):
        draw.text((MARGIN, top + 3), clip.title, fill=INK, font=font)
        top += TITLE_HEIGHT
        for frames, label, boxes in ((clip.source, "source", sheet.source_boxes),
                                     (clip.decoded, "decoded", sheet.decoded_boxes)):
            draw.text((MARGIN, top + tile_h // 2 - FONT_SIZE // 2), label, fill=INK, font=font)
            row = []
            for i, frame in enumerate(frames):
                left = MARGIN + LABEL_WIDTH + i * (tile_w + GAP)
                image.paste(_tile(frame, tile_w, tile_h), (left, top))
                row.append((left, top, left + tile_w, top + tile_h))
            boxes.append(row)
            top += tile_h + GAP
        top += CLIP_GAP - GAP
    return sheet


def _tile_size(frame_hw: tuple[int, int], tile_height: int | None) -> tuple[int, int]:
    h, w = frame_hw
    if tile_height is None:
        return h, w
    return tile_height, max(1, round(w * tile_height / h))


def _tile(frame: np.ndarray, width: int, height: int) -> Image.Image:
    tile = Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8)).convert("RGB")
    if tile.size != (width, height):  # smooth when shrinking; crisp pixels when enlarging tiny test clips
        shrink = width < tile.width
        tile = tile.resize((width, height), Image.Resampling.LANCZOS if shrink else Image.Resampling.NEAREST)
    return tile
