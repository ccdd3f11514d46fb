"""Decoding speed and quality: the typical case, as a ratio to a bare decode of the same frames.

A 30 fps source sampled to 16 fps, clips of 33x256x256: `first` (33 frames at 16 fps take
61 source frames) and `uniform:1` (the middle clip, from the keyframe before it). Each
method runs on one core (pinned, one decoder thread) in interleaved rounds (median of
`--repeat`), timed in CPU seconds of the process (all its threads), so time spent waiting
for a core that other work holds does not count; a machine shared with other work still
slows every method alike through caches and clocks:

- bare: PyAV decodes every frame from the keyframe at or before the clip to its last frame,
  converts nothing, the file opened with the reader's minimal stream analysis: what the core can do.
- pyav / decord: `decode_clips` with `ReadConfig.decoder` set (temp file, open, index,
  decode, scale, crop: what a Ray CPU worker runs).

Pixels: PSNR of each method's clip against a LANCZOS resize (PIL) of the same frames decoded
at full resolution, over the same window (pyav crops the centered cover window then scales;
decord scales the whole frame to the cover size then crops).

Sources: `demo/bigbuckbunny.mp4` (Big Buck Bunny, (c) Blender Foundation, CC-BY 3.0,
https://peach.blender.org; 1280x720, 25 fps, 5.3 s) looped `--loops` times and re-encoded by
imageio-ffmpeg's ffmpeg: libx264 crf 23, 30 fps, 720p and 1080p, GOP 250 and GOP 30, audio kept.

    .venv/bin/python bench/decode.py [--repeat 5] [--loops 4] [--core 0] [--out decode.json]
    .venv/bin/python bench/decode.py --tiny --out decode.json   # seconds: what tests/bench/test_bench_smoke.py runs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import av  # noqa: E402
from bench.machine import describe_machine  # noqa: E402
import decord  # noqa: E402
import imageio_ffmpeg  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from pipeline.reading import ReadConfig, Sample, decode_clips  # noqa: E402
from pipeline.reading.clip_sampling import plan_clips, video_end  # noqa: E402
from pipeline.reading.pyav_video import _QUICK_OPEN, PyAVVideo  # noqa: E402
from pipeline.reading.spatial import center_crop, cover_size, cover_window  # noqa: E402

OUT = (256, 256)
FPS = 16
FRAMES = 33
METHODS = ("bare", "pyav", "decord")
# --tiny: the same rounds, cases and tables at the smallest sizes (flags given still win)
TINY = {"repeat": 1, "loops": 1, "heights": [144]}


def make_source(work: Path, height: int, gop: int, loops: int) -> Path:
    path = work / f"bbb-{height}p-gop{gop}-x{loops}.mp4"
    if not path.exists():
        cmd = [
            imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
            "-stream_loop", str(loops - 1), "-i", str(ROOT / "demo" / "bigbuckbunny.mp4"),
            "-vf", f"fps=30,scale=-2:{height}:flags=lanczos", "-c:v", "libx264", "-preset", "medium", "-crf", "23",
            "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-c:a", "copy",
            str(path.with_suffix(".part.mp4")),
        ]
        subprocess.run(cmd, check=True)
        path.with_suffix(".part.mp4").rename(path)
    return path


def remux_looped(source: Path, times: int) -> Path:
    """The source repeated `times` times, packets copied (no re-encoding)."""
    path = source.with_name(f"{source.stem}-remuxed-x{times}.mp4")
    if not path.exists():
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
               "-stream_loop", str(times - 1), "-i", str(source), "-c", "copy", str(path)]
        subprocess.run(cmd, check=True)
    return path


def length_check(sources: list[Path], repeat: int) -> list[tuple[str, str, float]]:
    """Median ms of a first clip from each source, pyav and decord interleaved."""
    samples = [(p, Sample("bench", p.stem, p.read_bytes(), "mp4", None, None)) for p in sources]
    times: dict[tuple[str, str], list[float]] = {}
    for round_ in range(repeat + 1):
        for path, sample in samples:
            for decoder in ("pyav", "decord"):
                config = ReadConfig(num_frames=FRAMES, fps=FPS, resolution=OUT, decoder=decoder)
                start = time.process_time()
                list(decode_clips(sample, config))
                if round_:
                    times.setdefault((path.name, decoder), []).append(time.process_time() - start)
    return [(name, decoder, 1000 * statistics.median(t)) for (name, decoder), t in times.items()]


class Case:
    """One source and one clip policy: the clip's frames, and how to time each method on it."""

    def __init__(self, path: Path, clips: str):
        self.path, self.clips = path, clips
        self.sample = Sample("bench", path.stem, path.read_bytes(), "mp4", None, None)
        self.configs = {d: ReadConfig(num_frames=FRAMES, fps=FPS, clips=clips, resolution=OUT, decoder=d) for d in ("pyav", "decord")}
        video = PyAVVideo(str(path), self.configs["pyav"])
        video.read_all()
        starts, ends = video.frame_times()
        (self.indices,) = plan_clips(starts, video_end(starts, ends), self.configs["pyav"])
        video.plan([self.indices])
        self.keyframe_pts, self.wanted_pts = video.decode_span(0)
        self.last_pts = max(self.wanted_pts)
        for _ in video.clip_frames(0):
            pass
        self.pyav_decoded = video.frames_decoded  # the others are skipped: non-reference, and no clip's
        video.close()
        self.bare_frames = 0

    def bare(self) -> None:
        """Decode from the keyframe to the clip's last frame; convert nothing. Opened as cheaply as the reader opens."""
        count = 0
        with av.open(str(self.path), options=_QUICK_OPEN) as container:
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1
            if self.keyframe_pts > 0:
                container.seek(self.keyframe_pts, stream=stream, backward=True)
            for frame in container.decode(stream):
                count += 1
                if frame.pts >= self.last_pts:
                    break
        self.bare_frames = count

    def run(self, decoder: str) -> np.ndarray:
        (piece,) = decode_clips(self.sample, self.configs[decoder])
        assert piece.info.frame_indices == self.indices.tolist(), (decoder, piece.info.frame_indices)
        return piece.frames

    def reference(self) -> dict[str, np.ndarray]:
        """LANCZOS of the full-resolution frames, over each method's window."""
        wanted = {int(p) for p in self.wanted_pts}
        full = {}
        with av.open(str(self.path)) as container:
            stream = container.streams.video[0]
            if self.keyframe_pts > 0:
                container.seek(self.keyframe_pts, stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.pts in wanted:
                    full[frame.pts] = frame.to_ndarray(format="rgb24")
                if frame.pts >= self.last_pts:
                    break
        frames = [full[int(p)] for p in self.wanted_pts]
        h, w = frames[0].shape[:2]
        x, y, cw, ch = cover_window(h, w, 1.0, 0, *OUT)
        pyav = np.stack([np.asarray(Image.fromarray(f[y : y + ch, x : x + cw]).resize(OUT[::-1], Image.LANCZOS)) for f in frames])
        cover_h, cover_w = cover_size(h, w, *OUT)
        covered = np.stack([np.asarray(Image.fromarray(f).resize((cover_w, cover_h), Image.LANCZOS)) for f in frames])
        return {"pyav": pyav, "decord": np.ascontiguousarray(center_crop(covered, *OUT))}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="interleaved timed rounds (after one warm-up round)")
    parser.add_argument("--loops", type=int, default=4, help="times the 5.3 s demo is looped into each source")
    parser.add_argument("--core", type=int, default=0, help="the CPU core to pin to")
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "wfvae-bench-decode"), help="where sources are kept")
    parser.add_argument("--heights", type=int, nargs="+", default=[720, 1080], help="source heights")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--tiny", action="store_true", help="the smallest run, a few seconds (TINY in this script)")
    args = parser.parse_args()
    if args.tiny:
        parser.set_defaults(**TINY)
        args = parser.parse_args()

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    sources = [(h, g, make_source(work, h, g, args.loops)) for h in args.heights for g in (250, 30)]
    os.sched_setaffinity(0, {args.core})
    cases = [((h, g, clips), Case(path, clips)) for h, g, path in sources for clips in ("first", "uniform:1")]

    times = {(key, m): [] for key, _ in cases for m in METHODS}
    for round_ in range(args.repeat + 1):
        for key, case in cases:
            order = METHODS[round_ % 3 :] + METHODS[: round_ % 3]  # no method always runs first
            for method in order:
                fn = case.bare if method == "bare" else (lambda d=method: case.run(d))
                start = time.process_time()
                fn()
                if round_:  # the first round warms up
                    times[(key, method)].append(time.process_time() - start)

    seconds = args.loops * 5.3
    print("## Decoding\n")
    print(f"`bench/decode.py`: {FRAMES}x{OUT[0]}x{OUT[1]} clips at {FPS} fps from 30 fps H.264, as a ratio to a bare decode of")
    print("the frames the clip needs (PyAV, from the keyframe at or before the clip to its last frame, nothing")
    print("converted), and PSNR against a LANCZOS resize of the same frames at full resolution.\n")
    print(f"- Machine: **{describe_machine()}** (Python {platform.python_version()}, PyAV {av.__version__}, decord {decord.__version__}).")
    print("  One process pinned to one core, one decoder thread; times are CPU time of the process (all threads),")
    print(f"  methods interleaved in each round, median of {args.repeat} rounds after a warm-up. The 2 vCPUs were shared")
    print("  with other work: compare within a row.")
    print(f"- Sources: `demo/bigbuckbunny.mp4` looped {args.loops}x ({seconds:.0f} s), re-encoded by imageio-ffmpeg's ffmpeg:")
    print("  libx264 crf 23 (preset medium, B-frames), 30 fps, audio kept; GOP 250 and 30.")
    print(f"- Command: `.venv/bin/python bench/decode.py --repeat {args.repeat} --loops {args.loops}`.\n")
    print("Ratios are bare time / method time (1.0: as fast as the bare decode), of the medians and, in brackets,")
    print("of the best rounds.\n")
    print("| source | clip | frames decoded: bare, pyav | bare ms | pyav ms | pyav / bare | decord ms | decord / bare | pyav clips/s | PSNR pyav dB | PSNR decord dB |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    rates, figures = {}, {"machine": describe_machine(), "config": vars(args), "cases": [], "planning": {}}
    for key, case in cases:
        h, g, clips = key
        ms = {m: 1000 * statistics.median(times[(key, m)]) for m in METHODS}
        best = {m: min(times[(key, m)]) for m in METHODS}
        refs = case.reference()
        quality = {d: psnr(case.run(d), refs[d]) for d in ("pyav", "decord")}
        rates[key] = 1000 / ms["pyav"]
        print(
            f"| {h}p GOP {g} | `{clips}` | {case.bare_frames}, {case.pyav_decoded} | {ms['bare']:.0f} | {ms['pyav']:.0f} "
            f"| {ms['bare'] / ms['pyav']:.2f} ({best['bare'] / best['pyav']:.2f}) | {ms['decord']:.0f} "
            f"| {ms['bare'] / ms['decord']:.2f} ({best['bare'] / best['decord']:.2f}) | {rates[key]:.2f} "
            f"| {quality['pyav']:.1f} | {quality['decord']:.1f} |"
        )
        figures["cases"].append({"height": h, "gop": g, "clips": clips, "bare_frames": case.bare_frames,
                                 "pyav_frames": case.pyav_decoded, "ms": ms, "pyav_clips_per_s": rates[key],
                                 "over_bare": {d: ms["bare"] / ms[d] for d in ("pyav", "decord")},
                                 "psnr_db": quality})
    print()
    for h in args.heights:
        cores = sorted(100 / rates[(h, g, c)] for g in (250, 30) for c in ("first", "uniform:1"))
        figures["planning"][h] = cores
        print(f"- Planning, {h}p: {cores[0]:.0f}-{cores[-1]:.0f} decode cores per 100 clips/s (pyav, the four cases above).")

    short = sources[0][2]  # 720p (the first height) GOP 250
    long = remux_looped(short, 8)
    print(f"\nA first clip against the video's length: `{short.name}` ({len(short.read_bytes()) / 1e6:.0f} MB) and the same")
    print(f"remuxed 8x (`{long.name}`, {len(long.read_bytes()) / 1e6:.0f} MB); median ms, interleaved:\n")
    print("| source | decoder | ms |")
    print("| --- | --- | ---: |")
    figures["length"] = [{"source": n, "decoder": d, "ms": ms} for n, d, ms in length_check([short, long], args.repeat)]
    for row in figures["length"]:
        print(f"| {row['source']} | {row['decoder']} | {row['ms']:.0f} |")
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
