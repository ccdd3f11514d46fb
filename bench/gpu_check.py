"""One prepared GPU check: the encoder on a real GPU, held against the device's tensor cores, in one run.

    python3 bench/gpu_check.py --out $OUT/gpu_check.json            # on the GPU machine (~420 s at most)
    python3 bench/gpu_check.py --tiny                               # CPU, tiny model: what the test runs

A GPU is lent rarely, for minutes, to a machine with nothing but PyTorch (CUDA), numpy, safetensors,
pyarrow and fsspec and no network. So this needs only those and this repository, runs everything in one
process, and stops itself inside ``--budget-seconds``: sections run in the order below, each may use
the time the later ones do not need (``SECTION_SHARES``), and one that would run past its time is cut
with the reason written down. The JSON is rewritten after every section, so a run killed from
outside still leaves what it measured.

1. ``matmul``: bf16 dense matmul rate (n^3, after warm-up): the ceiling the rest is held against.
2. ``throughput``: the encoder (release layout, random weights) per variant (fp32; bf16; bf16 with
   ``channels_last_3d`` weights and input; bf16 with ``torch.compile``) and shape: clips/s, TFLOP/s
   (FLOPs counted by ``torch.utils.flop_counter`` at that shape) and the fraction of the ceiling.
   ``torch.compile`` runs last, as it is the slowest to warm up.
3. ``memory``: peak CUDA memory of a whole-clip fp32 encode at the large size against the paper's
   7,170 MB, and of a whole against a chunked (Causal Cache) encode of a long clip.
4. ``fidelity``: bf16 against fp32 latents, chunked against whole-clip latents, CUDA against CPU.
5. ``job_loop``: the encoder actor's own loop (``pipeline.encode.shard_loop``: batching, to_video
   through pinned uint8 staging, encode, statistics, latents landing one batch late, rows) fed uint8
   clips from memory, against the bare model on clips already on the device, interleaved.
6. ``canary``: the quality canary (``pipeline.encode.canary``) at ``--check-every`` in that loop.

Weights are random (speed and memory do not depend on their values); the clips are smooth moving
patterns, so fidelity is measured on content with structure rather than on noise.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import platform
import signal
import statistics
import sys
import time
import traceback
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable

STARTED = time.perf_counter()  # the budget counts from here: importing torch takes seconds
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.machine import describe_machine  # noqa: E402
from pipeline.encode.batching import to_video  # noqa: E402
from pipeline.encode.canary import QualityCanary  # noqa: E402
from pipeline.encode.shard_loop import EncodeSettings, ShardLoop  # noqa: E402
from pipeline.output.schema import LATENT_DTYPES  # noqa: E402
from pipeline.reading.records import ClipInfo, ClipPiece  # noqa: E402
from wfvae import PRESETS, WFVAE, WFVAEConfig  # noqa: E402

TINY_CONFIG = ROOT / "tests" / "fixtures" / "wfvae" / "tiny-4x" / "config.json"
PAPER_PEAK_MB = 7170  # WF-VAE paper: WF-VAE-L encoding 33x512x512 in fp32
BF16_REL_ERROR_TARGET = 1e-2
JOB_LOOP_TARGET = 0.95
NO_CUDA = "skipped: no CUDA device"
LATENT_DTYPE = "bfloat16"  # the job's default --latent-dtype
VARIANTS = ("fp32", "bf16", "bf16+channels_last", "bf16+compile")
# Order of the sections, and the share of the budget each keeps for itself: a section may use the
# whole budget less what the sections after it keep, so time one leaves unused goes to the next.
SECTION_SHARES = {"matmul": 0.03, "throughput": 0.32, "memory": 0.07, "fidelity": 0.08, "job_loop": 0.12,
                  "canary": 0.08, "compile": 0.30}


@dataclass
class Sizes:
    """What is measured; ``FULL`` is the GPU run, ``TINY`` the CPU test's."""

    preset: str
    matmul_size: int
    frames: int
    size: int
    batches: tuple[int, ...]
    large_size: int  # batch 1
    memory_frames: int
    chunk_frames: int
    cpu_frames: int  # the small clip encoded on CUDA and CPU
    cpu_size: int
    loop_batch: int  # the job's default --batch-size
    loop_clips: int  # per round of the job loop and of the bare model
    check_every: int
    min_seconds: float  # time each throughput point at least this long
    min_iterations: int


FULL = Sizes("WF-VAE-L-16Chn", 8192, 33, 256, (1, 4, 8, 16), 512, 129, 16, 9, 128, 4, 32, 100, 1.0, 3)
TINY = Sizes("tiny-4x", 256, 9, 32, (1, 2), 64, 17, 4, 9, 32, 2, 8, 8, 0.05, 2)


class OutOfTime(BaseException):
    """Raised by the alarm when a section reaches its deadline. A BaseException, like
    KeyboardInterrupt, so that no ``except Exception`` (torch.compile's included) swallows it."""


class Deadline:
    def __init__(self, at: float) -> None:
        self.at = at

    def left(self) -> float:
        return self.at - time.perf_counter()


@contextlib.contextmanager
def alarm_at(deadline: Deadline):
    """Raises OutOfTime in this (main) thread once ``deadline`` passes."""
    def ring(signum, frame):
        raise OutOfTime()

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, max(deadline.left(), 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def failure(error: BaseException) -> str:
    if isinstance(error, getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)):  # torch < 2.5
        return "skipped: out of memory"
    message = str(error).strip().splitlines()
    return f"failed: {type(error).__name__}: {message[0][:300] if message else ''}"


# -- the model, the clips, the device ------------------------------------------------------------
def model_config(name: str) -> WFVAEConfig:
    if name == "tiny-4x":
        return WFVAEConfig.from_json(TINY_CONFIG)
    if name not in PRESETS:
        raise SystemExit(f"--preset must be one of {sorted(PRESETS)} or tiny-4x, got {name!r}")
    return PRESETS[name]


def make_clips(count: int, frames: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """Smooth moving colour patterns, (T, H, W, 3) uint8: content with structure, unlike noise."""
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.linspace(0, 1, size, dtype=np.float32), np.linspace(0, 1, size, dtype=np.float32),
                       indexing="ij")
    clips = []
    for _ in range(count):
        freq = rng.uniform(1, 6, size=(3, 2)).astype(np.float32)
        speed, phase = rng.uniform(0.02, 0.2, size=3), rng.uniform(0, 2 * np.pi, size=3)
        clip = np.empty((frames, size, size, 3), dtype=np.uint8)
        for t in range(frames):
            for c in range(3):
                wave = np.sin(2 * np.pi * (freq[c, 0] * x + freq[c, 1] * y + speed[c] * t) + phase[c])
                clip[t, :, :, c] = np.clip(127.5 + 110 * wave + rng.normal(0, 4, (size, size)), 0, 255)
        clips.append(clip)
    return clips


def channels_last(vae: WFVAE) -> WFVAE:
    """Channels-last weights: ``Module.to(memory_format=channels_last_3d)`` refuses the model, whose
    per-frame convolutions keep the release's 4-D Conv2d weights (run as (1, k, k) conv3d)."""
    for parameter in vae.parameters():
        if parameter.dim() in (4, 5):
            layout = torch.channels_last_3d if parameter.dim() == 5 else torch.channels_last
            parameter.data = parameter.data.contiguous(memory_format=layout)
    return vae


class Device:
    def __init__(self, name: str) -> None:
        self.torch = torch.device(name)
        self.cuda = self.torch.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()


class FlopCounter:
    """FLOPs of one clip's encode at a shape, counted on a meta-device copy of the model."""

    def __init__(self, config: WFVAEConfig) -> None:
        with torch.device("meta"):  # no weights are made, let alone initialised
            self.model = WFVAE(config).eval()
        self._cache: dict[tuple[int, int], int] = {}

    def per_clip(self, frames: int, size: int) -> int:
        from torch.utils.flop_counter import FlopCounterMode

        if (frames, size) not in self._cache:
            counter = FlopCounterMode(display=False)
            with counter:
                self.model.encode(torch.zeros(1, 3, frames, size, size, device="meta"))
            self._cache[frames, size] = counter.get_total_flops()
        return self._cache[frames, size]


def timed_encodes(vae: WFVAE, video: torch.Tensor, device: Device, sizes: Sizes, warmup: int,
                  chunk_frames: int | None = None) -> tuple[float, float]:
    """(seconds of the first call, median seconds of a call after ``warmup`` calls)."""
    began = time.perf_counter()
    vae.encode(video, chunk_frames=chunk_frames)
    device.sync()
    first = time.perf_counter() - began
    for _ in range(warmup - 1):
        vae.encode(video, chunk_frames=chunk_frames)
    device.sync()
    times: list[float] = []
    while len(times) < sizes.min_iterations or sum(times) < sizes.min_seconds:
        began = time.perf_counter()
        vae.encode(video, chunk_frames=chunk_frames)
        device.sync()
        times.append(time.perf_counter() - began)
        if len(times) >= max(50, sizes.min_iterations):
            break
    return first, statistics.median(times)


# -- the sections ---------------------------------------------------------------------------------
class Check:
    """The run: models, clips and results shared by the sections."""

    def __init__(self, args: argparse.Namespace, sizes: Sizes, device: Device) -> None:
        self.args, self.sizes, self.device = args, sizes, device
        self.config = model_config(sizes.preset)
        self.warmup = 2  # cuDNN's benchmark mode tries kernels on the first call
        self.flops = FlopCounter(self.config)
        self.vae32 = WFVAE.from_config(self.config, device=device.torch, dtype=torch.float32)
        self.vae16 = copy.deepcopy(self.vae32).to(torch.bfloat16)
        self.ceiling_tflops: float | None = None
        # variant -> (seconds per GFLOP, seconds of the first call at a new shape): for estimates
        self.encode_rates: dict[str, tuple[float, float]] = {}

    def video(self, clips: list[np.ndarray], dtype: torch.dtype) -> torch.Tensor:
        """As the job builds it (to_video), made contiguous."""
        return to_video(clips, self.device.torch, dtype).contiguous()

    # 1 --------------------------------------------------------------------------------------------
    def matmul(self, out: dict[str, Any], deadline: Deadline) -> None:
        n = self.sizes.matmul_size
        a = torch.randn(n, n, device=self.device.torch, dtype=torch.bfloat16)
        b = torch.randn(n, n, device=self.device.torch, dtype=torch.bfloat16)
        for _ in range(3):
            torch.mm(a, b)
        self.device.sync()
        calls, began = 0, time.perf_counter()
        while calls < 10 or time.perf_counter() - began < 1.0:
            for _ in range(10):
                torch.mm(a, b)
            self.device.sync()
            calls += 10
        seconds = (time.perf_counter() - began) / calls
        self.ceiling_tflops = 2 * n ** 3 / seconds / 1e12
        out.update(n=n, dtype="bfloat16", ms_per_call=round(seconds * 1e3, 3), tflops=round(self.ceiling_tflops, 3))

    # 2 --------------------------------------------------------------------------------------------
    def points(self) -> list[tuple[int, int, int]]:
        s = self.sizes
        return [(s.frames, s.size, batch) for batch in s.batches] + [(s.frames, s.large_size, 1)]

    def variant_model(self, variant: str) -> WFVAE:
        if variant == "fp32":
            return self.vae32
        if variant == "bf16":
            return self.vae16
        vae = copy.deepcopy(self.vae16)
        if variant == "bf16+channels_last":
            return channels_last(vae)
        vae.encoder = torch.compile(vae.encoder, dynamic=False)
        return vae

    def throughput(self, out: dict[str, Any], deadline: Deadline, variants: tuple[str, ...]) -> None:
        out.setdefault("gflop_per_clip", {})
        out.setdefault("variants", {})
        out.setdefault("points", [])
        for variant in variants:
            try:
                vae = self.variant_model(variant)
            except Exception as error:  # noqa: BLE001 - every failure is reported, never silent
                out["variants"][variant] = failure(error)
                continue
            out["variants"][variant] = None
            points = self.points()
            if variant == "bf16+compile":  # each shape compiles anew: the most telling ones first
                points.sort(key=lambda p: (p[1] != self.sizes.size, -p[2]))
            for frames, size, batch in points:
                row = self.throughput_point(vae, variant, frames, size, batch, deadline)
                out["points"].append(row)
                gflop = self.flops.per_clip(frames, size) / 1e9
                out["gflop_per_clip"][f"{frames}x{size}x{size}"] = float(f"{gflop:.4g}")
                if row.get("skipped", "").startswith("failed"):
                    out["variants"][variant] = row["skipped"]  # the variant itself does not work
                    break
            del vae
            if self.device.cuda:
                torch.cuda.empty_cache()

    def throughput_point(self, vae: WFVAE, variant: str, frames: int, size: int, batch: int,
                         deadline: Deadline) -> dict[str, Any]:
        row: dict[str, Any] = {"variant": variant, "frames": frames, "size": size, "batch": batch}
        gflop = self.flops.per_clip(frames, size) * batch / 1e9
        if variant in self.encode_rates:  # from its last point: a new shape's first call, then the calls
            rate, first = self.encode_rates[variant]
            call = rate * gflop
            estimate = first + call * (self.warmup - 1) + max(call * self.sizes.min_iterations, self.sizes.min_seconds)
            if estimate > deadline.left():
                row["skipped"] = f"skipped: time budget (about {estimate:.0f} s needed, {deadline.left():.0f} s left)"
                return row
        try:
            dtype = torch.float32 if variant == "fp32" else torch.bfloat16
            video = self.video(make_clips(1, frames, size) * batch, dtype)
            if variant == "bf16+channels_last":
                video = video.contiguous(memory_format=torch.channels_last_3d)
            first, seconds = timed_encodes(vae, video, self.device, self.sizes, self.warmup)
        except OutOfTime:
            raise
        except Exception as error:  # noqa: BLE001
            if self.device.cuda:
                torch.cuda.empty_cache()
            row["skipped"] = failure(error)
            return row
        self.encode_rates[variant] = seconds / gflop, first
        tflops = gflop / seconds / 1e3
        row.update(clips_per_s=round(batch / seconds, 3), ms_per_batch=round(seconds * 1e3, 2),
                   first_call_s=round(first, 2), tflops=round(tflops, 4),
                   fraction_of_ceiling=round(tflops / self.ceiling_tflops, 4) if self.ceiling_tflops else None)
        return row

    # 3 --------------------------------------------------------------------------------------------
    def memory(self, out: dict[str, Any], deadline: Deadline) -> None:
        s = self.sizes
        cases = [("whole", s.frames, s.large_size, None), ("whole", s.memory_frames, s.size, None),
                 ("chunked", s.memory_frames, s.size, s.chunk_frames)]
        out.update(dtype="float32", paper_peak_mb=PAPER_PEAK_MB, points=[])
        if not self.device.cuda:
            out["peak"] = NO_CUDA
        for mode, frames, size, chunk in cases:
            row: dict[str, Any] = {"mode": mode, "frames": frames, "size": size, "chunk_frames": chunk}
            out["points"].append(row)
            try:
                video = self.video(make_clips(1, frames, size), torch.float32)
                self.vae32.encode(video, chunk_frames=chunk)  # cuDNN's kernel trials allocate workspaces
                self.device.sync()
                if self.device.cuda:
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats()
                    baseline = torch.cuda.memory_allocated()
                began = time.perf_counter()
                self.vae32.encode(video, chunk_frames=chunk)
                self.device.sync()
                row["seconds"] = round(time.perf_counter() - began, 3)
                if self.device.cuda:
                    # peak_mib: as a process holding only this model and input would see it (the
                    # bf16 copy resident here for the other sections is left out)
                    above = torch.cuda.max_memory_allocated() - baseline
                    weights = sum(p.numel() * p.element_size() for p in self.vae32.parameters())
                    row.update(peak_mib=round((weights + video.numel() * video.element_size() + above) / 2**20, 1),
                               peak_mib_above_model_and_input=round(above / 2**20, 1))
                del video
            except OutOfTime:
                raise
            except Exception as error:  # noqa: BLE001
                row["skipped"] = failure(error)
        first = out["points"][0]
        if "peak_mib" in first:
            out["large_peak_vs_paper"] = round(first["peak_mib"] * 2**20 / 1e6 / PAPER_PEAK_MB, 3)
        whole, chunked = out["points"][1:]
        if "peak_mib_above_model_and_input" in whole and "peak_mib_above_model_and_input" in chunked:
            out["chunked_over_whole_peak"] = round(chunked["peak_mib_above_model_and_input"]
                                                   / whole["peak_mib_above_model_and_input"], 4)

    # 4 --------------------------------------------------------------------------------------------
    def fidelity(self, out: dict[str, Any], deadline: Deadline) -> None:
        s = self.sizes
        clip = make_clips(1, s.frames, s.size, seed=1)
        out.update(clip=f"{s.frames}x{s.size}x{s.size}", chunk_frames=s.chunk_frames,
                   bf16_target=BF16_REL_ERROR_TARGET)
        whole32 = self.vae32.encode(self.video(clip, torch.float32)).mean.float()
        whole16 = self.vae16.encode(self.video(clip, torch.bfloat16)).mean.float()
        out["bf16_vs_fp32_rel_error"] = _rel_error(whole16, whole32)
        out["bf16_vs_fp32_worst_channel_rel_error"] = max(
            _rel_error(whole16[:, c], whole32[:, c]) for c in range(whole32.shape[1]))
        for name, vae, whole, dtype in (("bf16", self.vae16, whole16, torch.bfloat16),
                                        ("fp32", self.vae32, whole32, torch.float32)):
            chunked = vae.encode(self.video(clip, dtype), chunk_frames=s.chunk_frames).mean.float()
            out[f"chunked_vs_whole_{name}_max_abs"] = float((chunked - whole).abs().max())
            out[f"chunked_vs_whole_{name}_rel_error"] = _rel_error(chunked, whole)
        out["latent_max_abs"] = float(whole32.abs().max())
        if not self.device.cuda:
            out["cuda_vs_cpu"] = NO_CUDA
            return
        small = make_clips(1, s.cpu_frames, s.cpu_size, seed=2)
        cpu_model = copy.deepcopy(self.vae32).cpu()
        on_cpu = cpu_model.encode(to_video(small, torch.device("cpu"), torch.float32)).mean
        del cpu_model
        result = {"clip": f"{s.cpu_frames}x{s.cpu_size}x{s.cpu_size}"}
        # torch's defaults let cuDNN convolutions use TF32 (the job runs with them); strict turns it off
        for name, tf32 in (("torch_defaults", None), ("strict_fp32", False)):
            saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
            if tf32 is not None:
                torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
            try:
                on_gpu = self.vae32.encode(self.video(small, torch.float32)).mean.cpu()
            finally:
                torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
            result[f"{name}_rel_error"] = _rel_error(on_gpu, on_cpu)
            result[f"{name}_max_abs"] = float((on_gpu - on_cpu).abs().max())
        out["cuda_vs_cpu"] = result

    # 5 --------------------------------------------------------------------------------------------
    def job_loop(self, out: dict[str, Any], deadline: Deadline) -> None:
        """Rounds of (bare model, job loop) on the same clips and batch, interleaved."""
        s = self.sizes
        clips = make_clips(min(8, s.loop_clips), s.frames, s.size, seed=3)
        feed = [clips[i % len(clips)] for i in range(s.loop_clips)]
        loop = JobLoop(self.vae16, s.loop_batch)
        on_device = to_video(clips[:1] * s.loop_batch, self.device.torch, torch.bfloat16)  # the job's layout
        batches = math.ceil(s.loop_clips / s.loop_batch)
        for _ in range(self.warmup):
            self.vae16.encode(on_device)
            loop.run(feed[: s.loop_batch])
        self.device.sync()
        out.update(batch=s.loop_batch, clips_per_round=batches * s.loop_batch, compute_dtype="bfloat16",
                   input_layout="as to_video makes it: (B, T, H, W, 3) permuted, i.e. channels_last_3d strides",
                   latent_dtype=LATENT_DTYPE, target=JOB_LOOP_TARGET,
                   bare_clips_per_s=[], loop_clips_per_s=[])
        for _ in range(3):
            began = time.perf_counter()
            for _ in range(batches):
                self.vae16.encode(on_device)
            self.device.sync()
            out["bare_clips_per_s"].append(round(batches * s.loop_batch / (time.perf_counter() - began), 3))
            began = time.perf_counter()
            loop.run(feed[: batches * s.loop_batch])
            out["loop_clips_per_s"].append(round(batches * s.loop_batch / (time.perf_counter() - began), 3))
            out["loop_over_bare"] = round(statistics.median(out["loop_clips_per_s"])
                                          / statistics.median(out["bare_clips_per_s"]), 4)
        out["rows_per_round"] = len(loop.last_rows)

    # 6 --------------------------------------------------------------------------------------------
    def canary(self, out: dict[str, Any], deadline: Deadline) -> None:
        """The job loop over every + 1 clips (two checks: the first clip and the every-th) with and
        without the canary, alternated. On a GPU a check's own clock (the ``seconds`` in commit
        records) also holds the wait for encodes still queued when it synchronises, so the cost is
        the difference of the loops' times."""
        s = self.sizes
        every = s.check_every
        canary = QualityCanary(self.vae16, every, LATENT_DTYPES[LATENT_DTYPE])
        clips = make_clips(min(8, every + 1), s.frames, s.size, seed=4)
        feed = [clips[i % len(clips)] for i in range(every + 1)]
        warm = canary.for_shard()  # the decoder's first call (kernel choice) is not the canary's cost
        warm.observe("warm-up", 0, clips[0], self.vae16.encode(self.video(clips[:1], torch.bfloat16)).mean[0])
        warm.finish()
        plain, checked = JobLoop(self.vae16, s.loop_batch), JobLoop(self.vae16, s.loop_batch, canary)
        out.update(every=every, clips=len(feed), plain_s=[], with_canary_s=[], note="random weights: the PSNR "
                   "means nothing; each shard's first clip is checked too, so shards of S clips pay max(1/N, 1/S)")
        for _ in range(2):
            for name, loop in (("plain_s", plain), ("with_canary_s", checked)):
                began = time.perf_counter()
                results = loop.run(feed)
                self.device.sync()
                out[name].append(round(time.perf_counter() - began, 4))
            per_clip = min(out["plain_s"]) / len(feed)
            per_check = max(min(out["with_canary_s"]) - min(out["plain_s"]), 0.0) / results.checked
            out.update(checked=results.checked, check_s=round(per_check, 4), encode_s_per_clip=round(per_clip, 5),
                       check_s_own_clock=round(results.seconds / results.checked, 4),
                       check_in_clip_encodes=round(per_check / per_clip, 2),
                       share_of_encoder_time=round(per_check / (every * per_clip), 4),
                       psnr_mean_db=round(results.psnr_mean, 2))


def _rel_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    return float((value.float() - reference.float()).norm() / reference.float().norm())


class MemorySample:
    """A clip held in memory, as the encode loop reads a decoded sample (the job's come from decode workers)."""

    def __init__(self, number: int, frames: np.ndarray) -> None:
        count, height, width = frames.shape[:3]
        self.key, self.decode_seconds = f"{number:06d}", 0.0
        info = ClipInfo(shard="check", key=self.key, media_type="video", clip_index=0, frame_indices=list(range(count)),
                        timestamps=[t / 16 for t in range(count)], source_fps=30.0, source_height=720,
                        source_width=1280, source_num_frames=300, height=height, width=width, num_frames=count,
                        fps=16.0, caption=None, meta=None)
        self.piece = ClipPiece(info, frames, 0, True)

    def pieces(self):
        yield self.piece

    def close(self) -> None:
        pass


class JobLoop:
    """The encoder actor's own loop (pipeline.encode.shard_loop.ShardLoop) on clips from memory: batching,
    to_video through pinned uint8 staging, encode, statistics, latents landing one batch late, rows."""

    def __init__(self, vae: WFVAE, batch_size: int, canary: QualityCanary | None = None) -> None:
        self.loop = ShardLoop(vae, EncodeSettings(batch_size, LATENT_DTYPE), canary)
        self.last_rows: list = []

    def run(self, clips: list[np.ndarray]):
        encoded = self.loop.encode("check", (MemorySample(number, frames) for number, frames in enumerate(clips)))
        self.last_rows = encoded.rows
        return encoded.record.canary


# -- the run ----------------------------------------------------------------------------------------
def machine(device: Device) -> dict[str, Any]:
    info = {"description": describe_machine(), "python": platform.python_version(), "torch": torch.__version__,
            "device": str(device.torch), "torch_threads": torch.get_num_threads()}
    if device.cuda:
        props = torch.cuda.get_device_properties(device.torch)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    capability=f"{props.major}.{props.minor}", cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version(), cudnn_benchmark=torch.backends.cudnn.benchmark,
                    cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
                    matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32)
    return info


def run_sections(check: Check, report: dict[str, Any], write: Callable[[], None], budget: float,
                 started: float, sections: list[str]) -> bool:
    """Runs the chosen sections in SECTION_SHARES order; True if any was cut by its deadline."""
    order = list(SECTION_SHARES)
    cut_any = False
    begun = time.perf_counter()
    available = budget - (begun - started)  # the shares are of what setup (imports, models) left
    eager = tuple(v for v in VARIANTS if v in check.args.variants and v != "bf16+compile")
    jobs: dict[str, Callable[[dict, Deadline], None]] = {
        "matmul": check.matmul,
        "throughput": lambda out, dl: check.throughput(out, dl, eager),
        "memory": check.memory, "fidelity": check.fidelity, "job_loop": check.job_loop, "canary": check.canary,
        "compile": lambda out, dl: check.throughput(report["sections"]["throughput"], dl, ("bf16+compile",)),
    }
    active = [n for n in order if n in sections and (n != "compile" or "bf16+compile" in check.args.variants)]
    for index, name in enumerate(order):
        later = sum(SECTION_SHARES[n] for n in order[index + 1:] if n in active)
        deadline = Deadline(begun + available * (1 - later))
        # compile's points join the throughput section; its own notes are prefixed
        out = report["sections"].setdefault("throughput" if name == "compile" else name, {})
        prefix = "compile_" if name == "compile" else ""
        if name == "compile" and "bf16+compile" not in check.args.variants:
            continue  # its reason is in the throughput section's variants
        if name not in sections:
            out[prefix + "skipped"] = "skipped: not asked for (--sections)"
            continue
        began = time.perf_counter()
        print(f"[gpu_check] {name}: {deadline.left():.0f} s available", file=sys.stderr, flush=True)
        if deadline.left() <= 0:
            out[prefix + "cut"] = "skipped: time budget spent before this section"
            cut_any = True
            continue
        try:
            with alarm_at(deadline):
                jobs[name](out, deadline)
        except OutOfTime:
            cut_any = True
            out[prefix + "cut"] = (f"cut: time budget (stopped after {time.perf_counter() - began:.0f} s); "
                                   "the figures recorded before are complete")
        except Exception as error:  # noqa: BLE001 - reported, and the next section still runs
            out[prefix + "failed"] = failure(error)
            out[prefix + "traceback"] = traceback.format_exc(limit=6)
        with contextlib.suppress(Exception):
            check.device.sync()
            if check.device.cuda:
                torch.cuda.empty_cache()
        out[prefix + "seconds"] = round(time.perf_counter() - began, 2)
        write()
    return cut_any


def table(report: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(section, case, figures, against) rows of the printed table."""
    s, rows = report["sections"], []

    def add(section: str, case: str, figures: str, against: str = "") -> None:
        rows.append((section, case, figures, against))

    def skipped(section: str, data: dict) -> bool:
        notes = [k for k in data if k.removeprefix("compile_") in ("skipped", "cut", "failed")]
        for key in notes:
            add(section, key.removesuffix("skipped").removesuffix("cut").removesuffix("failed").rstrip("_"),
                data[key])
        return all(k in notes or k.removeprefix("compile_") in ("seconds", "traceback") for k in data)

    m = s.get("matmul", {})
    if not skipped("matmul", m):
        add("matmul", f"bf16 {m['n']}^3", f"{m['tflops']:.3g} TFLOP/s", "the ceiling")
    t = s.get("throughput", {})
    if not skipped("throughput", t):
        for variant, reason in t.get("variants", {}).items():
            if reason:
                add("encoder", variant, reason)
        for p in t.get("points", []):
            case = f"{p['variant']} {p['frames']}x{p['size']}x{p['size']} b{p['batch']}"
            if "skipped" in p:
                add("encoder", case, p["skipped"])
            else:
                fraction = f"{p['fraction_of_ceiling']:.3g} of ceiling" if p["fraction_of_ceiling"] is not None else ""
                add("encoder", case, f"{p['clips_per_s']:.3g} clips/s, {p['tflops']:.3g} TFLOP/s", fraction)
    mem = s.get("memory", {})
    if not skipped("memory", mem):
        for p in mem.get("points", []):
            case = f"fp32 {p['mode']} {p['frames']}x{p['size']}x{p['size']}" + (
                f" chunk {p['chunk_frames']}" if p["chunk_frames"] else "")
            if "skipped" in p:
                add("memory", case, p["skipped"])
            elif "peak_mib" in p:
                against = f"paper {PAPER_PEAK_MB:,} MB" if p is mem["points"][0] else ""
                add("memory", case, f"peak {p['peak_mib']:,.0f} MiB ({p['peak_mib_above_model_and_input']:,.0f} "
                                    f"above model+input), {p['seconds']:.2f} s", against)
            else:
                add("memory", case, f"{mem['peak']} ({p['seconds']:.2f} s)")
        if "chunked_over_whole_peak" in mem:
            add("memory", "chunked / whole peak", f"{mem['chunked_over_whole_peak']:.3f}")
    f = s.get("fidelity", {})
    if not skipped("fidelity", f):
        add("fidelity", f"bf16 vs fp32 {f['clip']}", f"rel err {f['bf16_vs_fp32_rel_error']:.2e} (worst channel "
                        f"{f['bf16_vs_fp32_worst_channel_rel_error']:.2e})", f"target < {BF16_REL_ERROR_TARGET:g}")
        for dtype in ("bf16", "fp32"):
            if f"chunked_vs_whole_{dtype}_max_abs" in f:
                add("fidelity", f"chunked ({f['chunk_frames']}) vs whole {dtype}",
                    f"max abs {f[f'chunked_vs_whole_{dtype}_max_abs']:.2e}, rel "
                    f"{f[f'chunked_vs_whole_{dtype}_rel_error']:.2e}", f"latents up to {f['latent_max_abs']:.2f}")
        gpu_cpu = f.get("cuda_vs_cpu")
        if isinstance(gpu_cpu, dict):
            for name in ("torch_defaults", "strict_fp32"):
                add("fidelity", f"CUDA vs CPU fp32 {gpu_cpu['clip']} ({name.replace('_', ' ')})",
                    f"rel err {gpu_cpu[f'{name}_rel_error']:.2e}, max abs {gpu_cpu[f'{name}_max_abs']:.2e}")
        elif gpu_cpu:
            add("fidelity", "CUDA vs CPU fp32", gpu_cpu)
    j = s.get("job_loop", {})
    if not skipped("job_loop", j) and "loop_over_bare" in j:
        add("job loop", f"bf16 batch {j['batch']}, {j['clips_per_round']} clips x {len(j['loop_clips_per_s'])}",
            f"loop {statistics.median(j['loop_clips_per_s']):.2f} / bare "
            f"{statistics.median(j['bare_clips_per_s']):.2f} clips/s = {j['loop_over_bare']:.3f}",
            f"target >= {JOB_LOOP_TARGET}")
    c = s.get("canary", {})
    if not skipped("canary", c) and "share_of_encoder_time" in c:
        add("canary", f"--check-every {c['every']}", f"check {c['check_s'] * 1e3:.1f} ms = "
            f"{c['check_in_clip_encodes']:.1f} clip encodes; {c['share_of_encoder_time']:.2%} of encoder time",
            "target <= 5%")
    return rows


def print_table(report: dict[str, Any]) -> None:
    rows = [("section", "case", "figures", "against")] + table(report)
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    print(f"gpu_check on {report['machine']['description']} (torch {report['machine']['torch']}), "
          f"{report['model']}, random weights, {report['elapsed_seconds']:.0f} s of {report['budget_seconds']:.0f}")
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])


def default_out(device: Device) -> Path:
    if os.environ.get("OUT"):
        return Path(os.environ["OUT"]) / "gpu_check.json"
    return ROOT / "bench" / "results" / f"gpu_check-{device.torch.type}.json"


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, Sizes]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="JSON results (default $OUT/gpu_check.json, else "
                                                 "bench/results/gpu_check-<device>.json)")
    parser.add_argument("--budget-seconds", type=float, default=420.0,
                        help="stop within this many seconds of starting (default 420)")
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    parser.add_argument("--tiny", action="store_true", help="tiny model and sizes (the CPU test)")
    parser.add_argument("--sections", nargs="+", choices=list(SECTION_SHARES), default=list(SECTION_SHARES))
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=None,
                        help="encoder variants (default all; bf16+compile only on CUDA unless named)")
    parser.add_argument("--preset", help=f"one of {sorted(PRESETS)} or tiny-4x")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    for field in fields(Sizes):
        if field.name == "preset":
            continue
        kind = {"batches": int}.get(field.name, float if field.name == "min_seconds" else int)
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=kind,
                            nargs="+" if field.name == "batches" else None)
    args = parser.parse_args(argv)
    base = asdict(TINY if args.tiny else FULL)
    given = {k: (tuple(v) if isinstance(v, list) else v) for k, v in vars(args).items() if k in base and v is not None}
    sizes = Sizes(**{**base, **given})
    args.variants_given = args.variants is not None
    args.variants = tuple(args.variants or VARIANTS)
    for name in ("frames", "memory_frames", "cpu_frames"):
        if (getattr(sizes, name) - 1) % 4:
            parser.error(f"--{name.replace('_', '-')} must be 1 + a multiple of 4 (WF-VAE's temporal "
                         f"compression), got {getattr(sizes, name)}")
    for name in ("size", "large_size", "cpu_size"):
        if getattr(sizes, name) % 8:
            parser.error(f"--{name.replace('_', '-')} must be a multiple of 8, got {getattr(sizes, name)}")
    if sizes.chunk_frames % 4:
        parser.error(f"--chunk-frames must be a multiple of 4, got {sizes.chunk_frames}")
    return args, sizes


def main(argv: list[str] | None = None) -> None:
    started = STARTED
    args, sizes = parse_args(argv)
    name = "cuda" if args.device == "auto" and torch.cuda.is_available() else \
        "cpu" if args.device == "auto" else args.device
    device = Device(name)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.cuda:
        torch.backends.cudnn.benchmark = True  # as the encoder actor runs on a GPU
    if not args.variants_given and not device.cuda:
        args.variants = tuple(v for v in args.variants if v != "bf16+compile")
    out_path = args.out or default_out(device)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"machine": machine(device), "model": sizes.preset, "settings": asdict(sizes),
                              "budget_seconds": args.budget_seconds, "sections": {}}
    if "bf16+compile" not in args.variants:
        report["sections"]["throughput"] = {"variants": {"bf16+compile": NO_CUDA if not device.cuda else
                                                         "not asked for (--variants)"}}

    def write() -> None:
        report["elapsed_seconds"] = round(time.perf_counter() - started, 2)
        temporary = out_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(report, indent=2, default=str))
        temporary.replace(out_path)

    check = Check(args, sizes, device)
    report["setup_seconds"] = round(time.perf_counter() - started, 2)
    cut = run_sections(check, report, write, args.budget_seconds, started, args.sections)
    write()
    print_table(report)
    print(f"wrote {out_path}")
    if cut:  # a cut compile may leave worker processes behind: do not wait for them
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
