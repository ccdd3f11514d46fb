"""Images as a media type of their own: real files made with Pillow, read as the job reads them.

An image sample gives one clip of one frame, displayed as a viewer shows it (EXIF orientation,
transparency on white, first frame of an animation), sized like a video's frames; a bad image costs
its sample, with an error record saying why.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from pipeline.reading import ClipInfo, ErrorRecord, ReadConfig, Sample, decode_clips, iter_samples, probe_clips
from pipeline.reading.config import DEFAULT_MAX_IMAGE_PIXELS
from pipeline.reading.image import ALPHA_BACKGROUND
from pipeline.reading.records import SampleError
from tests.support.images import animated, corner, encode_image, jpeg, odd_cmyk_profile, photo, png_header_only
from tests.support.shards import make_shard, write_shards
from tests.support.videos import BACKGROUND, CORNER_COLOR, encode, index_frames, read_index, truncated

REPO = Path(__file__).resolve().parents[2]
WHITE = np.array(ALPHA_BACKGROUND)


def image_sample(data: bytes, ext: str = "jpg", key: str = "k") -> Sample:
    return Sample("mem://shard.tar", key, data, ext, "a caption", '{"id": 1}', media_type="image",
                  parts=(ext, "json", "txt"))


def decode(data: bytes, ext: str = "png", **settings) -> np.ndarray:
    """The one frame (H, W, 3) decode_clips gives for an image file."""
    (piece,) = decode_clips(image_sample(data, ext), ReadConfig(**{"resolution": (32, 64), **settings}))
    assert piece.frames.shape[0] == 1 and piece.start == 0 and piece.is_last
    return piece.frames[0]


def refused(data: bytes, ext: str = "png", **settings) -> ErrorRecord:
    with pytest.raises(SampleError) as caught:
        decode(data, ext, **settings)
    record = caught.value.record
    assert (record.stage, record.shard, record.key) == ("decode", "mem://shard.tar", "k")
    return record


def close(a: np.ndarray, b, tolerance: int) -> bool:
    return bool(np.abs(a.astype(int) - np.asarray(b, dtype=int)).max() <= tolerance)


# -- orientation -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("orientation", "shown"), [
    (1, (32, 64)), (2, (32, 64)), (3, (32, 64)), (6, (64, 32)), (8, (64, 32)),
])
def test_exif_orientation_is_applied(orientation, shown):
    """Stored 64 wide and 32 high with a red top-left corner; shown as a viewer shows it."""
    data = jpeg(corner(32, 64), orientation=orientation)
    frame = decode(data, "jpg", resolution=shown)
    assert frame.shape == (*shown, 3)
    with Image.open(io.BytesIO(data)) as stored:
        displayed = np.asarray(ImageOps.exif_transpose(stored).convert("RGB"))
    assert np.array_equal(frame, displayed)  # same size: the resize is exact, so the pixels are Pillow's own
    h, w = shown
    quarters = {"top-left": frame[: h // 8, : w // 8], "top-right": frame[: h // 8, -w // 8 :],
                "bottom-left": frame[-h // 8 :, : w // 8], "bottom-right": frame[-h // 8 :, -w // 8 :]}
    red = {1: "top-left", 2: "top-right", 3: "bottom-right", 6: "top-right", 8: "bottom-left"}[orientation]
    assert close(quarters[red].mean(axis=(0, 1)), CORNER_COLOR, 8)
    assert all(close(q.mean(axis=(0, 1)), BACKGROUND, 8) for name, q in quarters.items() if name != red)


def test_a_portrait_photo_chooses_the_portrait_bucket():
    """Tagged "rotate 90" (6): stored landscape, displayed portrait, encoded portrait."""
    config = ReadConfig(resolution=None, buckets=((32, 64), (64, 32)))
    probe = probe_clips(image_sample(jpeg(corner(32, 64), orientation=6)), config)
    (info,) = probe.clips
    assert (info.source_height, info.source_width, info.height, info.width, info.rotation) == (64, 32, 64, 32, 270)
    g = probe.geometry
    assert (g.stored_height, g.stored_width, g.display_size) == (32, 64, (64, 32))


# -- modes -----------------------------------------------------------------------------------------

def test_cmyk_uses_its_icc_profile_else_the_plain_formula():
    cyan = Image.new("CMYK", (64, 32), (255, 0, 0, 0))
    assert close(decode(encode_image(cyan, "jpg"), "jpg"), (0, 255, 255), 3)
    # a profile that prints cyan as red: applied, the pixels are red
    assert close(decode(encode_image(cyan, "jpg", icc_profile=odd_cmyk_profile()), "jpg"), (253, 7, 10), 4)
    # a profile littlecms cannot read: the plain formula, the sample is kept
    assert close(decode(encode_image(cyan, "jpg", icc_profile=b"not a profile" * 20), "jpg"), (0, 255, 255), 3)


def test_palette_with_transparency_is_composited_on_white():
    image = Image.new("P", (64, 32), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.paste(1, (32, 0, 64, 32))  # left half: transparent red, right half: opaque blue
    frame = decode(encode_image(image, "png", transparency=0))
    assert close(frame[:, :28], WHITE, 0) and close(frame[:, 36:], (0, 0, 255), 0)


def test_sixteen_bit_gray_is_scaled_to_eight_bits_not_clipped():
    levels = np.zeros((32, 64), np.uint16)
    for band, value in enumerate((0, 300, 32768, 65535)):
        levels[:, band * 16 : (band + 1) * 16] = value
    image = Image.fromarray(levels)
    assert image.mode == "I;16"
    frame = decode(encode_image(image, "png"))
    assert frame[:, 4::16].tolist() == [[[v] * 3 for v in (0, 1, 128, 255)]] * 32  # 65535 * 255 / 65535, rounded


@pytest.mark.parametrize(("mode", "pixel", "expected"), [
    ("RGBA", (255, 0, 0, 255), (255, 0, 0)),
    ("RGBA", (0, 255, 0, 0), (255, 255, 255)),  # fully transparent: the colour stored under it does not show
    ("RGBA", (255, 0, 0, 128), (255, 127, 127)),  # half red over white
    ("LA", (0, 255), (0, 0, 0)),
    ("LA", (0, 0), (255, 255, 255)),
    ("LA", (0, 128), (127, 127, 127)),
])
def test_alpha_is_composited_on_white(mode, pixel, expected):
    frame = decode(encode_image(Image.new(mode, (64, 32), pixel), "png"))
    assert close(frame, expected, 1)


def test_gray_and_one_bit_become_rgb():
    assert close(decode(encode_image(Image.new("L", (64, 32), 77), "png")), (77, 77, 77), 0)
    assert close(decode(encode_image(Image.new("1", (64, 32), 1), "png")), (255, 255, 255), 0)


def test_float_pixels_are_refused_naming_the_mode():
    buffer = io.BytesIO()
    Image.new("F", (64, 32), 0.5).save(buffer, "TIFF")
    record = refused(buffer.getvalue(), "tif", image_extensions=("tif",))
    assert record.error_type == "UnsupportedImageMode" and "mode F" in record.message


# -- sizes -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("settings", [{"resolution": (256, 256)},
                                      {"resolution": None, "buckets": ((64, 128), (96, 96))}])
def test_a_one_pixel_image_is_upscaled_to_cover(settings):
    frame = decode(encode_image(np.array([[[10, 200, 30]]], np.uint8), "png"), **settings)
    assert frame.shape == ((256, 256, 3) if settings["resolution"] else (96, 96, 3))
    assert close(frame, (10, 200, 30), 0)


def test_a_ten_megapixel_photo_is_read_and_matches_a_full_resolution_resize():
    height, width = 2592, 3872  # 10.04 MP
    picture = photo(height, width)
    data = jpeg(picture, quality=92)
    assert height * width < DEFAULT_MAX_IMAGE_PIXELS
    frame = decode(data, "jpg", resolution=(256, 256))
    # reference: the whole image decoded, its centred square resized with Lanczos
    with Image.open(io.BytesIO(data)) as full:
        left = (width - height) // 2
        reference = np.asarray(full.convert("RGB").resize((256, 256), Image.Resampling.LANCZOS,
                                                          box=(left, 0, left + height, height)))
    mse = np.mean((frame.astype(float) - reference) ** 2)
    assert 10 * np.log10(255**2 / mse) > 40


def test_a_long_thin_image_is_cropped_before_it_is_scaled():
    """1 x 20,000 pixels covering 256x256 would be 256 x 5,120,000 (3.9 GB) if resized before its crop."""
    strip = np.zeros((1, 20_000, 3), np.uint8)
    strip[0, 9_999:10_001] = (0, 0, 255)  # the middle: what the crop keeps
    frame = decode(encode_image(strip, "png"), resolution=(256, 256))
    assert frame.shape == (256, 256, 3) and frame[..., 2].min() > 0


def test_pillow_s_own_limit_is_not_the_one_applied(monkeypatch):
    """Pillow's process-wide bomb check would refuse this 64x32 image; the setting admits it."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    assert decode(encode_image(photo(32, 64), "png")).shape == (32, 64, 3)


def test_the_pixel_limit_is_a_setting():
    data = encode_image(photo(32, 64), "png")
    record = refused(data, max_image_pixels=2000)
    assert record.error_type == "ImageTooLarge"
    assert "64 x 32 = 2,048 pixels" in record.message and "2,000" in record.message
    assert "--max-image-pixels" in record.message
    assert decode(data, max_image_pixels=2048).shape == (32, 64, 3)


BOMB_SCRIPT = textwrap.dedent("""
    import json, time
    from pipeline.reading import ReadConfig, Sample, SampleError, decode_clips
    from tests.support.images import black_png, encode_image, photo, png_header_only

    def peak_rss_kb():
        \"\"\"This process's peak RSS (getrusage's ru_maxrss would start at the parent's, kept across exec).\"\"\"
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

    def read(data, **settings):
        \"\"\"The error type (or None), seconds and peak RSS growth (KB) of decoding `data`.\"\"\"
        before, start = peak_rss_kb(), time.perf_counter()
        try:
            list(decode_clips(Sample("s", "k", data, "png", None, None, media_type="image"), ReadConfig(**settings)))
            error, message = None, None
        except SampleError as exc:
            error, message = exc.record.error_type, exc.record.message
        grown = peak_rss_kb() - before
        return {"bytes": len(data), "error": error, "message": message, "seconds": time.perf_counter() - start,
                "grown_kb": grown}

    read(encode_image(photo(32, 64)))  # warm-up: the libraries loaded
    real_bomb = black_png(6000, 6000)
    print(json.dumps({"header": read(png_header_only(30_000, 30_000)),
                      "real": read(real_bomb, max_image_pixels=1_000_000),
                      "admitted": read(real_bomb, max_image_pixels=36_000_000)}))
""")


def test_a_decompression_bomb_is_refused_by_its_header_quickly_and_without_memory():
    """30,000 x 30,000 RGB is 2.7 GB decoded: refused from its header (a few bytes of pixel data here, a real
    one compresses to under 1 MB). A real 6000 x 6000 bomb (108 MB decoded, 105 KB) shows the memory a decode
    takes, measured the same way: refused, none; admitted, at least its 108 MB."""
    run = subprocess.run([sys.executable, "-c", BOMB_SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    header, real, admitted = result["header"], result["real"], result["admitted"]
    assert header["bytes"] < 2**20 and header["error"] == "ImageTooLarge"
    assert "30000 x 30000 = 900,000,000 pixels" in header["message"]
    assert f"{DEFAULT_MAX_IMAGE_PIXELS:,}" in header["message"]
    assert real["bytes"] < 2**20 and real["error"] == "ImageTooLarge"
    for refused_bomb in (header, real):
        assert refused_bomb["seconds"] < 0.5 and refused_bomb["grown_kb"] < 10_000  # peak RSS: under 10 MB more
    assert admitted["error"] is None and admitted["grown_kb"] > 100_000, result


# -- frames ----------------------------------------------------------------------------------------

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


@pytest.mark.parametrize("ext", ["gif", "webp"])
def test_an_animated_image_gives_its_first_frame(ext):
    data = animated([np.full((32, 64, 3), c, np.uint8) for c in COLOURS], ext)
    with Image.open(io.BytesIO(data)) as image:
        assert image.n_frames == 3
    assert close(decode(data, ext, image_extensions=(ext,)), COLOURS[0], 2)


@pytest.mark.parametrize("settings", [
    {}, {"num_frames": 33}, {"clips": "all", "num_frames": 5}, {"clips": "uniform:3"}, {"fps": 4.0},
    {"clips": "whole", "max_frames": 65}, {"short_videos": "shorten"}, {"decoder": "decord"},
])
def test_an_image_is_one_clip_of_one_frame_whatever_the_clip_settings(settings):
    sample = image_sample(jpeg(photo(48, 64)))
    config = ReadConfig(resolution=(32, 64), **settings)
    pieces = list(decode_clips(sample, config, piece_frames=4))
    assert len(pieces) == 1
    (piece,) = pieces
    assert piece.frames.shape == (1, 32, 64, 3) and piece.frames.dtype == np.uint8
    assert piece.frames.flags["C_CONTIGUOUS"] and piece.frames.flags["WRITEABLE"]
    assert piece.info == ClipInfo(
        shard="mem://shard.tar", key="k", media_type="image", clip_index=0, frame_indices=[0], timestamps=[0.0],
        source_fps=None, source_height=48, source_width=64, source_num_frames=1, height=32, width=64, num_frames=1,
        fps=None, caption="a caption", meta='{"id": 1}', rotation=0, source_frames_estimated=False)


# -- bad files -------------------------------------------------------------------------------------

def test_a_truncated_jpeg_is_named_so():
    record = refused(truncated(jpeg(photo(240, 320)), 0.5), "jpg")
    assert record.error_type == "TruncatedImage" and "truncated" in record.message


def test_a_text_file_named_jpg_is_not_an_image():
    record = refused(b"this is a caption, not a picture\n", "jpg")
    assert record.error_type == "UnreadableImage"
    assert "JPEG, PNG, WEBP" in record.message and "b'this is a ca'" in record.message


def test_a_format_not_listed_is_not_opened_whatever_its_name():
    """A GIF named .jpg is read as a GIF only where gif is one of the image extensions."""
    gif = encode_image(photo(32, 64), "gif")
    assert refused(gif, "jpg").error_type == "UnreadableImage"
    assert decode(gif, "jpg", image_extensions=("jpg", "gif")).shape == (32, 64, 3)


def test_an_empty_image_part():
    assert refused(b"", "png").error_type == "EmptyImage"


# -- samples from tar shards -----------------------------------------------------------------------

def test_image_samples_from_a_webdataset_shard(tmp_path):
    """key.jpg + key.txt, as img2dataset writes them; the caption and parts come along."""
    path = tmp_path / "images.tar"
    files = {f"{i:09d}": jpeg(photo(48, 64, 5 * i)) for i in range(3)}
    path.write_bytes(make_shard([{"__key__": key, "jpg": data, "txt": f"picture {key}\n", "json": {"i": key}}
                                 for key, data in files.items()]))
    config = ReadConfig(resolution=(48, 64))
    samples = list(iter_samples(str(path), config))
    assert [(s.key, s.media_type, s.media_ext, s.parts, s.caption) for s in samples] == \
        [(key, "image", "jpg", ("jpg", "json", "txt"), f"picture {key}") for key in files]
    for sample in samples:
        (piece,) = decode_clips(sample, config)
        assert piece.info.caption == sample.caption and piece.info.media_type == "image"
        with Image.open(io.BytesIO(files[sample.key])) as image:  # at its own size: Pillow's pixels, unresized
            assert np.array_equal(piece.frames[0], np.asarray(image.convert("RGB")))


def test_a_mixed_shard_gives_videos_and_images_in_input_order(tmp_path):
    shards = write_shards(tmp_path, samples=6, frames=12, images={1: "jpg", 3: "png", 4: "webp"},
                          broken={5: "truncated"})
    config = ReadConfig(resolution=(48, 64), num_frames=9)
    (url,) = shards.urls
    got = []
    for sample in iter_samples(url, config):
        try:
            got += [(sample.key, sample.media_type, piece.info.num_frames, piece.frames.shape)
                    for piece in decode_clips(sample, config)]
        except SampleError as exc:
            got.append((sample.key, sample.media_type, exc.record.error_type, None))
    assert got == [
        ("s0-v000", "video", 9, (9, 48, 64, 3)), ("s0-v001", "image", 1, (1, 48, 64, 3)),
        ("s0-v002", "video", 9, (9, 48, 64, 3)), ("s0-v003", "image", 1, (1, 48, 64, 3)),
        ("s0-v004", "image", 1, (1, 48, 64, 3)), ("s0-v005", "video", "UnreadableVideo", None),
    ]


def test_a_sample_with_a_video_and_an_image_is_read_as_its_video(tmp_path):
    """video2dataset-style: the jpg beside the mp4 is its thumbnail."""
    path = tmp_path / "thumbs.tar"
    video = encode(index_frames(9))
    path.write_bytes(make_shard([{"__key__": "clip", "jpg": jpeg(photo(48, 64)), "mp4": video, "txt": "c"},
                                 {"__key__": "still", "png": encode_image(photo(48, 64), "png")},
                                 {"__key__": "words", "txt": "no media at all"}]))
    config = ReadConfig(resolution=(48, 64), num_frames=9)
    clip, still, words = iter_samples(str(path), config)
    assert (clip.media_type, clip.media_ext, clip.media, clip.parts) == ("video", "mp4", video, ("jpg", "mp4", "txt"))
    (piece,) = decode_clips(clip, config)
    assert read_index(piece.frames) == list(range(9))
    assert (still.media_type, still.media_ext) == ("image", "png")
    assert (words.stage, words.error_type) == ("sample", "NoMediaPart")
    assert "['mp4', 'mkv', 'webm', 'mov', 'avi']" in words.message and "['jpg', 'jpeg', 'png', 'webp']" in words.message


def test_no_image_extensions_reads_no_images(tmp_path):
    path = tmp_path / "one.tar"
    path.write_bytes(make_shard([{"__key__": "still", "jpg": jpeg(photo(48, 64))}]))
    (record,) = iter_samples(str(path), ReadConfig(image_extensions=()))
    assert record.error_type == "NoMediaPart"


# -- the probe -------------------------------------------------------------------------------------

def test_the_probe_of_an_image_is_what_decoding_gives():
    sample = image_sample(jpeg(corner(48, 64), orientation=8))
    config = ReadConfig(resolution=None, buckets=((64, 48), (48, 64)), clips="all", num_frames=9)
    probe = probe_clips(sample, config)
    (piece,) = decode_clips(sample, config)
    assert probe.clips == [piece.info] and probe.problem is None
    assert (probe.media_type, probe.codec) == ("image", "jpeg")
    g = probe.geometry
    assert (g.stored_height, g.stored_width, g.rotation, g.mirrored, g.pixel_aspect, g.display_size) == \
        (48, 64, 90, False, 1.0, (64, 48))
    assert (probe.timing.num_frames, probe.timing.fps, probe.timing.duration, probe.timing.estimated) == \
        (1, None, None, False)


def test_the_probe_of_a_broken_image_raises_as_decoding_does():
    with pytest.raises(SampleError) as caught:
        probe_clips(image_sample(png_header_only(30_000, 30_000), "png"), ReadConfig())
    assert (caught.value.record.error_type, caught.value.record.key) == ("ImageTooLarge", "k")


# -- settings --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("settings", "message"), [
    ({"video_extensions": ("mp4", "gif"), "image_extensions": ("jpg", "gif")},
     "image_extensions must not repeat video_extensions (['gif'])"),
    ({"image_extensions": ("heic",)}, "image formats Pillow opens here"),
    ({"image_extensions": "jpg"}, "sequence of extensions"),
    ({"max_image_pixels": 0}, "max_image_pixels must be an integer >= 1"),
])
def test_image_settings_are_checked(settings, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ReadConfig(**settings)


def test_a_hand_built_sample_must_name_a_known_media_type():
    with pytest.raises(ValueError, match="media_type must be one of"):
        Sample("s", "k", b"", "jpg", None, None, media_type="picture")


def test_decoding_an_image_takes_milliseconds():
    """A 1080p JPEG to 256x256 decodes at a reduced DCT scale: well under the 50 ms of a call's budget."""
    data = jpeg(photo(1080, 1920), quality=90)
    config = ReadConfig(resolution=(256, 256))
    list(decode_clips(image_sample(data), config))
    start = time.process_time()
    for _ in range(5):
        list(decode_clips(image_sample(data), config))
    assert (time.process_time() - start) / 5 < 0.05
