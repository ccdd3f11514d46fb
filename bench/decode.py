"""Decoding speed: clips per second per CPU core, 720p sources to 33x256x256 clips.

Runs pinned to one core (decord with one decoder thread, torch with one thread),
so the figures are what one Ray CPU worker gives. Prints a markdown section for
docs/benchmarks.md.

    .venv/bin/python bench/decode.py [--source demo/bigbuckbunny.mp4] [--repeat 7]

The demo source is Big Buck Bunny, (c) Blender Foundation, CC-BY 3.0
(https://peach.blender.org): 1280x720, 25 fps, 5.3 s.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from pipeline.reading import ReadConfig, Sample, decode_clips  # noqa: E402
from pipeline.reading.spatial import center_crop, cover_size, resize  # noqa: E402
from pipeline.reading.video import (  # noqa: E402
    _QUICK_PROBE,
    SequentialReader,
    TempVideoFile,
    _probe,
    frame_times,
    open_reader,
    probe,
    read_frames,
)

MACHINE = "dev-cpu: 2 vCPU AMD EPYC (AVX2), 24 GiB, torch 2.13 CPU"
OUT = (256, 256)


def median_seconds(fn, repeat: int) -> float:
    """Median wall time of `repeat` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def clip_rate(sample: Sample, config: ReadConfig, repeat: int) -> tuple[float, int]:
    """Median seconds to decode every clip of the sample, and how many clips that is."""
    pieces: list = []

    def run():
        pieces[:] = list(decode_clips(sample, config))

    seconds = median_seconds(run, repeat)
    assert pieces and all(p.frames.shape[1:] == (*OUT, 3) for p in pieces)
    return seconds, len(pieces), sum(len(p.frames) for p in pieces)


def resize_float(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """The first torch resize: via float32 (kept here to compare against)."""
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    y = torch.nn.functional.interpolate(x, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return y.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def stage_times(sample: Sample, repeat: int) -> dict[str, float]:
    """Where one default first-clip decode spends its time (median ms per stage)."""
    results: dict[str, list[float]] = {}

    def timed(name, fn):
        start = time.perf_counter()
        value = fn()
        results.setdefault(name, []).append((time.perf_counter() - start) * 1000)
        return value

    for _ in range(repeat + 1):
        with timed("write the temp file", lambda: TempVideoFile(sample.video, sample.video_ext)) as tmp:
            info = timed("probe with PyAV (first frame)", lambda: probe(tmp.path))
            h, w = cover_size(info.stored_height, info.stored_width, *OUT)
            reader = timed("open decord (indexes all packets)", lambda: open_reader(tmp.path, h, w, 1, info.codec))
            timed("frame timestamps", lambda: frame_times(reader))
            frames = timed("get_batch 33 frames, scaled while converting to RGB", lambda: read_frames(reader, np.arange(33)))
            timed("center crop (copy)", lambda: np.ascontiguousarray(center_crop(frames, *OUT)))
            del reader
    return {name: statistics.median(ms[1:]) for name, ms in results.items()}


def component_times(sample: Sample, repeat: int) -> list[tuple[str, str, float]]:
    """Before/after figures for the speed changes made (median ms)."""
    rows = []
    with TempVideoFile(sample.video, sample.video_ext) as tmp:
        rows.append(("probe", "FFmpeg's full stream analysis (before)", median_seconds(lambda: _probe(tmp.path, None), repeat)))
        rows.append(("probe", "minimal probe + first frame (after)", median_seconds(lambda: _probe(tmp.path, _QUICK_PROBE), repeat)))
        info = probe(tmp.path)
        h, w = cover_size(info.stored_height, info.stored_width, *OUT)
        full = open_reader(tmp.path, None, None, 1, info.codec)
        scaled = open_reader(tmp.path, h, w, 1, info.codec)
        frames = read_frames(full, np.arange(33))
        rows.append(("33 frames to 256 px", "decode at 1280x720", median_seconds(lambda: read_frames(full, np.arange(33)), repeat)))
        rows.append(("33 frames to 256 px", "  + torch resize via float32 (before)", median_seconds(lambda: resize_float(frames, h, w), repeat)))
        rows.append(("33 frames to 256 px", "  + torch resize on uint8 (after)", median_seconds(lambda: resize(frames, h, w), repeat)))
        rows.append(("33 frames to 256 px", "decoder scales while converting (default)", median_seconds(lambda: read_frames(scaled, np.arange(33)), repeat)))
        del full, scaled
        starts, _ = frame_times(open_reader(tmp.path, h, w, 1, info.codec))

        def sequential():
            reader = SequentialReader(tmp.path, h, w, 1, starts)
            reader.read(np.arange(129))
            reader.close()

        rows.append(("129 frames to 256 px", "decord get_batch (thread fed ahead)", median_seconds(
            lambda: read_frames(open_reader(tmp.path, h, w, 1, info.codec), np.arange(129)), repeat)))
        rows.append(("129 frames to 256 px", "PyAV front to back, in the calling thread", median_seconds(sequential, repeat)))
    return [(what, how, 1000 * s) for what, how, s in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default=str(ROOT / "demo" / "bigbuckbunny.mp4"))
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--core", type=int, default=0, help="the CPU core to pin to")
    args = parser.parse_args()

    os.sched_setaffinity(0, {args.core})
    torch.set_num_threads(1)
    source = Path(args.source)
    sample = Sample(shard="bench", key=source.stem, video=source.read_bytes(), video_ext=source.suffix[1:], caption=None, meta=None)
    base = dict(num_frames=33, resolution=OUT, decode_threads=1)
    runs = [
        ("first clip (decord)", "decoder scales (default)", dict(clips="first")),
        ("uniform:2 (decord)", "decoder scales (default)", dict(clips="uniform:2")),
        ("all clips, 4 per video (PyAV, front to back)", "decoder scales (default)", dict(clips="all")),
        ("whole video, 129 frames (PyAV, front to back)", "decoder scales (default)", dict(clips="whole")),
        ("first clip at fps=12.5 (65 source frames)", "decoder scales (default)", dict(clips="first", fps=12.5)),
        ("first clip (decord)", "torch resize (`resize_at_decode=False`)", dict(clips="first", resize_at_decode=False)),
        ("all clips, 4 per video (PyAV)", "torch resize (`resize_at_decode=False`)", dict(clips="all", resize_at_decode=False)),
    ]
    print("## Decoding\n")
    print(f"Machine: {MACHINE}. One process pinned to one core (`os.sched_setaffinity`), decord with 1 decoder")
    print(f"thread, torch with 1 thread. Python {platform.python_version()}, torch {torch.__version__}.")
    print(f"Source: `{source.name}` (Big Buck Bunny, (c) Blender Foundation, CC-BY 3.0; 1280x720, 25 fps, 5.3 s,")
    print(f"{len(sample.video) / 1e6:.1f} MB H.264), read from memory as a `Sample`. Output: 33x256x256 RGB uint8 clips.")
    print(f"Command: `.venv/bin/python bench/decode.py --repeat {args.repeat}` (median of {args.repeat} runs after a warm-up).\n")
    print("| clips | resize | clips/s per core | ms per clip | output frames/s |")
    print("| --- | --- | ---: | ---: | ---: |")
    for policy, resize_name, extra in runs:
        config = ReadConfig(**{**base, **extra})
        seconds, clips, frames = clip_rate(sample, config, args.repeat)
        print(f"| {policy} | {resize_name} | {clips / seconds:.2f} | {1000 * seconds / clips:.0f} | {frames / seconds:.0f} |")

    print("\nWhere a default first-clip decode spends its time (median ms):\n")
    print("| stage | ms |")
    print("| --- | ---: |")
    for stage, ms in stage_times(sample, args.repeat).items():
        print(f"| {stage} | {ms:.1f} |")

    print("\nBefore/after of the speed changes (median ms, same run):\n")
    print("| work | how | ms |")
    print("| --- | --- | ---: |")
    for what, how, ms in component_times(sample, args.repeat):
        print(f"| {what} | {how} | {ms:.1f} |")


if __name__ == "__main__":
    main()
