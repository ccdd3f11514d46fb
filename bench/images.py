"""Image decoding: images per second per core through `decode_clips`, and the pixels' quality.

What a decode worker does with an image sample: `decode_clips` on a `Sample` of media_type "image"
(open, header check, EXIF, decode, mode to RGB, cover window to 256x256), single-threaded, timed in
CPU seconds of the process (time waiting for a core that other work holds does not count; a busy
machine still slows it through caches and clocks), median of `--repeat` rounds after a warm-up,
the cases interleaved in each round. Images per second per core = 1 / median seconds.

The source is a natural picture: frame 60 of `demo/bigbuckbunny.mp4` (Big Buck Bunny, (c) Blender
Foundation, CC-BY 3.0) scaled to 1920x1080 with Lanczos, saved as a JPEG (quality 90, 4:2:0), a PNG
(zlib level 6) and a lossy WebP, and in the variants that cost extra: EXIF orientation 6 (displayed
portrait), gray, CMYK, RGBA, a palette with transparency, 16-bit gray.

Quality: PSNR of the 256x256 output against the reference, the whole image decoded and its centred
cover window resized with Lanczos in floating point, for the reader's `REDUCING_GAP` (the chosen 2,
then 1 and 8: how far JPEG's DCT scaling and Pillow's box reduce go before Lanczos) and for
swscale's area filter, the video path's (`pyav_video.SCALE_FLAGS`; from RGB, no chroma to bring up).

    .venv/bin/python bench/images.py [--repeat 15] [--core 0] [--json figures.json]
    .venv/bin/python bench/images.py --tiny        # a few seconds: the same cases, 3 rounds
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import av  # noqa: E402
import numpy as np  # noqa: E402
import PIL  # noqa: E402
from PIL import Image  # noqa: E402

from bench.machine import describe_machine  # noqa: E402
from pipeline.reading import ReadConfig, Sample, decode_clips  # noqa: E402
from pipeline.reading import image as image_reader  # noqa: E402
from pipeline.reading.spatial import cover_box  # noqa: E402

SIZE = (1080, 1920)  # height, width
OUT = (256, 256)
GAPS = (2.0, 1.0, 8.0)  # the reader's REDUCING_GAP first


def source_picture() -> np.ndarray:
    with av.open(str(ROOT / "demo" / "bigbuckbunny.mp4")) as container:
        frame = next(f for i, f in enumerate(container.decode(video=0)) if i == 60).to_ndarray(format="rgb24")
    return np.asarray(Image.fromarray(frame).resize(SIZE[::-1], Image.Resampling.LANCZOS))


def save(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def make_cases(picture: np.ndarray) -> dict[str, tuple[bytes, str]]:
    """Case name -> (file bytes, extension). The first JPEG and the first PNG are the baselines."""
    rgb = Image.fromarray(picture)
    exif = Image.Exif()
    exif[0x0112] = 6
    rgba = rgb.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgb.size))
    palette = rgb.quantize(255)
    sixteen = Image.fromarray((np.asarray(rgb.convert("L"), dtype=np.uint16) * 257))
    return {
        "jpeg": (save(rgb, "JPEG", quality=90), "jpg"),
        "jpeg, EXIF orientation 6": (save(rgb, "JPEG", quality=90, exif=exif.tobytes()), "jpg"),
        "jpeg, gray": (save(rgb.convert("L"), "JPEG", quality=90), "jpg"),
        "jpeg, CMYK": (save(rgb.convert("CMYK"), "JPEG", quality=90), "jpg"),
        "png": (save(rgb, "PNG"), "png"),
        "png, RGBA": (save(rgba, "PNG"), "png"),
        "png, palette + transparency": (save(palette, "PNG", transparency=0), "png"),
        "png, 16-bit gray": (save(sixteen, "PNG"), "png"),
        "webp (lossy)": (save(rgb, "WEBP", quality=90), "webp"),
    }


def timed(cases: dict[str, tuple[bytes, str]], config: ReadConfig, repeat: int) -> dict[str, float]:
    """Median CPU seconds of `decode_clips` per case, interleaved rounds after a warm-up round."""
    samples = {name: Sample("bench", name, data, ext, None, None, media_type="image")
               for name, (data, ext) in cases.items()}
    seconds: dict[str, list[float]] = {name: [] for name in cases}
    for round_ in range(repeat + 1):
        for name, sample in samples.items():
            start = time.process_time()
            (piece,) = decode_clips(sample, config)
            if round_:
                seconds[name].append(time.process_time() - start)
            assert piece.frames.shape == (1, *OUT, 3)
    return {name: statistics.median(s) for name, s in seconds.items()}


def reference(data: bytes) -> np.ndarray:
    """The whole image decoded, its cover window resized with Lanczos in floating point."""
    with Image.open(io.BytesIO(data)) as image:
        rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    box = cover_box(rgb.shape[0], rgb.shape[1], *OUT)
    channels = [Image.fromarray(rgb[..., c], "F").resize(OUT[::-1], Image.Resampling.LANCZOS, box=box)
                for c in range(3)]
    return np.stack([np.asarray(c) for c in channels], axis=-1)


def swscale_area(data: bytes) -> np.ndarray:
    """The video path's scaler on the same picture: the cover window cropped, then area-scaled (swscale)."""
    with Image.open(io.BytesIO(data)) as image:
        rgb = image.convert("RGB")
    left, top, right, bottom = (round(v) for v in cover_box(rgb.height, rgb.width, *OUT))
    frame = av.VideoFrame.from_ndarray(np.asarray(rgb.crop((left, top, right, bottom))), format="rgb24")
    return frame.reformat(width=OUT[1], height=OUT[0], format="rgb24", interpolation="AREA").to_ndarray()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255**2 / mse) if mse > 0 else float("inf")


def with_gap(gap: float, run: Callable[[], np.ndarray]) -> np.ndarray:
    saved, image_reader.REDUCING_GAP = image_reader.REDUCING_GAP, gap
    try:
        return run()
    finally:
        image_reader.REDUCING_GAP = saved


def quality(cases: dict[str, tuple[bytes, str]], config: ReadConfig, repeat: int) -> list[dict]:
    """PSNR and median ms per REDUCING_GAP for the JPEG and the PNG, and swscale's area filter's PSNR."""
    rows = []
    for name in ("jpeg", "png"):
        data, ext = cases[name]
        truth = reference(data)
        sample = Sample("bench", name, data, ext, None, None, media_type="image")
        for gap in GAPS:
            out = with_gap(gap, lambda: next(iter(decode_clips(sample, config))).frames[0])
            ms = 1000 * with_gap(gap, lambda: timed({name: (data, ext)}, config, repeat)[name])
            rows.append({"source": name, "method": f"Pillow, REDUCING_GAP {gap:g}" + (" (the reader's)" if gap ==
                         image_reader.REDUCING_GAP else ""), "psnr_db": round(psnr(out, truth), 2), "ms": round(ms, 2)})
        rows.append({"source": name, "method": "swscale area, RGB to RGB (the video path's filter)",
                     "psnr_db": round(psnr(swscale_area(data), truth), 2), "ms": None})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=15, help="interleaved timed rounds (after one warm-up round)")
    parser.add_argument("--core", type=int, default=None, help="the CPU core to pin to (default: not pinned)")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--tiny", action="store_true", help="3 rounds, fewer quality rounds: a few seconds")
    args = parser.parse_args()
    repeat = 3 if args.tiny else args.repeat
    if args.core is not None:
        os.sched_setaffinity(0, {args.core})
    load_before = os.getloadavg()[0]
    config = ReadConfig(resolution=OUT)
    cases = make_cases(source_picture())
    seconds = timed(cases, config, repeat)
    rows = quality(cases, config, 1 if args.tiny else max(3, repeat // 3))
    load_after = os.getloadavg()[0]

    base = {name: seconds["jpeg" if name.startswith("jpeg") else "png" if name.startswith("png") else name]
            for name in cases}
    print("## Images\n")
    print(f"`bench/images.py`{' --tiny' if args.tiny else ''}: `decode_clips` of a {SIZE[1]}x{SIZE[0]} image to "
          f"{OUT[0]}x{OUT[1]}, one thread, CPU time, median of {repeat} interleaved rounds after a warm-up.\n")
    print(f"- Machine: **{describe_machine()}** (Python {platform.python_version()}, Pillow {PIL.__version__}); "
          f"{'pinned to core ' + str(args.core) if args.core is not None else 'not pinned'}; load average (1 min) "
          f"{load_before:.2f} before, {load_after:.2f} after.\n")
    print("| image | bytes | ms | images/s per core | cost against its format's plain case |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, (data, _) in cases.items():
        print(f"| {name} | {len(data):,} | {1000 * seconds[name]:.1f} | {1 / seconds[name]:.0f} | "
              f"{seconds[name] / base[name]:.2f}x |")
    print("\nQuality against the whole image decoded and resized with Lanczos in floating point:\n")
    print("| source | method | PSNR dB | ms |")
    print("| --- | --- | ---: | ---: |")
    for row in rows:
        print(f"| {row['source']} | {row['method']} | {row['psnr_db']:.2f} | "
              f"{'' if row['ms'] is None else format(row['ms'], '.1f')} |")
    if args.json:
        figures = {"machine": describe_machine(), "load_average": [load_before, load_after], "repeat": repeat,
                   "images_per_second": {name: 1 / s for name, s in seconds.items()},
                   "ms": {name: 1000 * s for name, s in seconds.items()}, "quality": rows}
        Path(args.json).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
