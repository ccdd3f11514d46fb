"""The contact sheet: source frames (re-read by key) above decoded frames, labelled with PSNR."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pipeline.inspect import SheetClip, check_decoding, compose, psnr
from pipeline.inspect.decode_check import to_frames
from pipeline.output.schema import tensor_from_bytes
from pipeline.reading import ReadConfig, read_shard
from tests.support.jobs import REPO, TINY_MODEL
from tests.support.outputs import read_rows
from wfvae import WFVAE


def _crop(image: Image.Image, box) -> np.ndarray:
    return np.asarray(image.crop(box))


def test_compose_places_source_above_decoded_at_native_size():
    rng = np.random.default_rng(0)

    def frames(h, w):
        return rng.integers(0, 255, (3, h, w, 3), dtype=np.uint8)

    clips = [SheetClip(f"k{i}", 0, 20.0 + i, [0, 2, 4], frames(h, w), frames(h, w))
             for i, (h, w) in enumerate([(32, 32), (64, 32)])]
    sheet = compose(clips, tile_height=None)
    for clip, source_row, decoded_row in zip(clips, sheet.source_boxes, sheet.decoded_boxes):
        for i, (source_box, decoded_box) in enumerate(zip(source_row, decoded_row)):
            assert np.array_equal(_crop(sheet.image, source_box), clip.source[i])
            assert np.array_equal(_crop(sheet.image, decoded_box), clip.decoded[i])
            assert decoded_box[1] >= source_box[3] and decoded_box[0] == source_box[0]
    width, height = sheet.image.size
    assert height >= 8 + 2 * 32 + 2 * 64 and width >= 76 + 3 * 32
    scaled = compose(clips, tile_height=96)
    box = scaled.source_boxes[1][0]
    assert (box[2] - box[0], box[3] - box[1]) == (48, 96)


def test_decoded_clips_beside_their_source(moments, tmp_path):
    check = check_decoding(str(moments.out), str(TINY_MODEL), clips=3, frames=3, tile_height=None)
    assert check.same_weights and len(check.clips) == 3
    assert len({c.shard for c in check.clips}) == 2  # spread over the committed shards
    rows = {(r["key"], r["clip"]): r for r in read_rows(moments.out, shards=moments.committed)}
    vae = WFVAE.from_pretrained(TINY_MODEL)
    config = ReadConfig(num_frames=5, temporal_compression=4, resolution=None, buckets=((32, 32), (64, 32)), clips="uniform:2")
    image = check.sheet.image
    for n, clip in enumerate(check.clips):
        source = next(item.frames for item in read_shard(str(moments.shards / f"{clip.shard}.tar"), config)
                      if hasattr(item, "frames") and (item.info.key, item.info.clip_index) == (clip.key, clip.clip))
        row = rows[(clip.key, clip.clip)]
        latent = tensor_from_bytes(row["latent"], row["latent_shape"], row["latent_dtype"]).float()
        decoded = to_frames(vae.decode(latent[None])[0])
        assert clip.psnr == pytest.approx(psnr(source, decoded)) and 0 < clip.psnr < 60 and clip.frames == 5
        shown = [0, 2, 4]
        for i, (source_box, decoded_box) in enumerate(zip(check.sheet.source_boxes[n], check.sheet.decoded_boxes[n])):
            on_sheet_source, on_sheet_decoded = _crop(image, source_box), _crop(image, decoded_box)
            assert np.array_equal(on_sheet_source, source[shown[i]])
            assert np.array_equal(on_sheet_decoded, decoded[shown[i]])
            assert on_sheet_source.std() > 5 and on_sheet_decoded.std() > 1  # not blank
    path = tmp_path / "sheet.png"
    image.save(path)
    assert Image.open(path).size == image.size


def test_cli_writes_the_sheet_and_prints_psnr(moments, tmp_path):
    sheet = tmp_path / "sheet.png"
    result = subprocess.run(
        [sys.executable, str(REPO / "jobs" / "inspect_latents.py"), str(moments.out), "--model", str(TINY_MODEL),
         "--input", moments.all_input_spec, "--sheet", str(sheet), "--clips", "2", "--frames", "4",
         "--tile-height", "64"], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("PSNR") == 2 and f"contact sheet {sheet}" in result.stdout
    with Image.open(sheet) as image:
        pixels = np.asarray(image.convert("RGB"))
        width, height = image.size
    assert height >= 2 * (2 * 64) and width >= 4 * 64  # two clips, two rows of 64 px tiles, four frames
    assert pixels.std() > 10  # not blank


def test_cli_names_clips_missing_from_the_input(moments, tmp_path):
    other = tmp_path / "part-000000.tar"
    other.write_bytes((moments.shards / "part-000003.tar").read_bytes())  # same name, other videos
    result = subprocess.run(
        [sys.executable, str(REPO / "jobs" / "inspect_latents.py"), str(moments.out), "--model", str(TINY_MODEL),
         "--input", str(other), "--sheet", str(tmp_path / "s.png")], capture_output=True, text=True, timeout=300,
        cwd=REPO)
    assert result.returncode == 1 and "decode check" in result.stderr and "not in the input" in result.stderr
