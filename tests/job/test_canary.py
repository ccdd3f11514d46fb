"""The quality canary on real frames: the trained demo model scores well; a wrong model, a
colour-range mistake and swapped channels score visibly low; results merge across records."""

from __future__ import annotations

import json
import math
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from pipeline.encode.batching import to_video
from pipeline.encode.canary import QualityCanary
from pipeline.output.quality import CanaryResults, format_quality
from pipeline.output.records import CommitRecord, Totals
from wfvae import WFVAE

REPO = Path(__file__).resolve().parents[2]
DEMO_MODEL = REPO / "demo" / "model"  # trained on this video: ~23 dB on these crops
UNTRAINED = REPO / "tests" / "fixtures" / "wfvae" / "tiny-4x"  # same architecture, the reference's test weights
GOOD_DB, BAD_DB = 20.0, 17.0


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    """5 frames (64x64 centre crop of 72x128) from the start of the demo video, uint8 RGB."""
    out = []
    with av.open(str(REPO / "demo" / "bigbuckbunny.mp4")) as container:
        for frame in container.decode(video=0):
            out.append(frame.to_ndarray(format="rgb24", width=128, height=72)[4:68, 32:96])
            if len(out) == 5:
                break
    return np.ascontiguousarray(np.stack(out))


@pytest.fixture(scope="module")
def vae() -> WFVAE:
    return WFVAE.from_pretrained(DEMO_MODEL)


def encode(vae: WFVAE, video: torch.Tensor) -> torch.Tensor:
    return vae.encode(video).mean[0]


def test_the_right_model_scores_well(vae, frames):
    canary = QualityCanary(vae, every=1, latent_dtype=torch.bfloat16)
    value = canary.psnr(frames, encode(vae, to_video(frames, vae.device, vae.dtype)))
    assert GOOD_DB < value < 40


def test_mistakes_score_visibly_low(vae, frames):
    canary = QualityCanary(vae, every=1)
    right = to_video(frames, vae.device, vae.dtype)
    good = canary.psnr(frames, encode(vae, right))
    zero_to_one = torch.from_numpy(frames).permute(3, 0, 1, 2)[None].float() / 255  # [0, 1], not [-1, 1]
    bgr = right.flip(1)
    for mistake in (encode(vae, zero_to_one), encode(vae, bgr)):
        assert canary.psnr(frames, mistake) < BAD_DB < good
    wrong_model = WFVAE.from_pretrained(UNTRAINED)
    assert QualityCanary(wrong_model, every=1).psnr(frames, encode(wrong_model, right)) < BAD_DB
    other_source = np.ascontiguousarray(frames[:, ::-1])  # latents of another clip (a broken source)
    assert canary.psnr(other_source, encode(vae, right)) < BAD_DB


def test_every_nth_clip_of_a_shard_is_checked_first_included(vae, frames):
    canary = QualityCanary(vae, every=3, batch_size=2)
    mean = encode(vae, to_video(frames, vae.device, vae.dtype))
    shard = canary.for_shard()
    for i in range(7):
        shard.observe(f"k{i}", 0, frames, mean)
    assert shard.results.checked == 2  # clips 0 and 3 decoded as a batch; clip 6 waits for a partner
    results = shard.finish()
    assert (results.seen, results.checked) == (7, 3)  # clips 0, 3 and 6
    assert sorted(clip.key for clip in results.worst) == ["k0", "k3", "k6"]
    assert results.seconds > 0 and results.psnr_min == pytest.approx(results.psnr_mean)
    assert CanaryResults.from_dict(json.loads(json.dumps(results.to_dict()))) == \
        CanaryResults.from_dict(results.to_dict())


def test_a_batch_decodes_to_the_same_psnr_as_single_clips(vae, frames):
    """Clips of two latent shapes, batched per shape: each PSNR equals its clip decoded alone."""
    canary = QualityCanary(vae, every=1, batch_size=3)
    clips = [np.ascontiguousarray(np.roll(frames, 7 * i, axis=2)) for i in range(3)]
    clips += [np.ascontiguousarray(frames[:, :32]), np.ascontiguousarray(frames[:, 32:])]  # 32x64
    shard = canary.for_shard()
    alone = []
    for i, clip in enumerate(clips):
        mean = encode(vae, to_video(clip, vae.device, vae.dtype))
        alone.append(canary.psnr(clip, mean))
        shard.observe(f"c{i}", 0, clip, mean)
    assert shard.results.checked == 3  # the first shape's batch is full; the second's waits
    by_key = {clip.key: clip.psnr for clip in shard.finish().worst}
    assert [by_key[f"c{i}"] for i in range(5)] == pytest.approx(alone, abs=1e-2)


def test_records_merge_into_mean_minimum_and_worst_keys():
    totals = Totals()
    for s, values in enumerate([[30.0, 28.0], [12.5], [], [31.0, 29.0, 27.0]]):
        results = CanaryResults(every=10)
        for i, value in enumerate(values):
            results.add(f"s{s}-{i}", 0, value)
        totals.add(CommitRecord(f"part-{s}", rows=3, canary=results))
    totals.add(CommitRecord("part-old", rows=2))  # committed by a run without the canary
    merged = totals.canary
    assert merged.checked == 6 and merged.psnr_min == 12.5 and merged.every == 10
    assert merged.psnr_mean == pytest.approx((30 + 28 + 12.5 + 31 + 29 + 27) / 6)
    assert [(clip.shard, clip.key) for clip in merged.worst[:2]] == [("part-1", "s1-0"), ("part-3", "s3-2")]
    assert len(merged.worst) == 5
    line = format_quality(merged)
    assert "min 12.50 dB" in line and "part-1/s1-0#0 12.5" in line
    assert Totals().canary is None and "not checked" in format_quality(None)


def test_identical_clips_and_bad_input(vae, frames):
    canary = QualityCanary(vae, every=1)
    mean = encode(vae, to_video(frames, vae.device, vae.dtype))
    assert math.isfinite(canary.psnr(frames, mean))
    with pytest.raises(ValueError, match="do not match the decoded clip"):
        canary.psnr(frames[:, :32], mean)
    with pytest.raises(ValueError, match="every must be a positive integer"):
        QualityCanary(vae, every=0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        QualityCanary(vae, every=1, batch_size=0)


@pytest.mark.slow
def test_the_job_records_and_reports_the_canary(ray_head, dataset, tmp_path):
    """--check-every 2 on two shards: the first, third, ... clip of each is decoded; the records,
    the summary and inspect_latents.py report the result."""
    import subprocess
    import sys

    from tests.support.jobs import SMALL_CLIPS, run_cli

    out = tmp_path / "out"
    args = [*SMALL_CLIPS]
    args[args.index("--model") + 1] = str(DEMO_MODEL)
    run_cli(ray_head, "--input", str(dataset.folder / "part-{000000..000001}.tar"), "--output", str(out), *args,
            "--check-every", "2")
    checked = 0
    for name in ("part-000000", "part-000001"):
        record = json.loads((out / "_committed" / f"{name}.json").read_text())
        canary = record["canary"]
        assert canary["every"] == 2 and canary["seen"] == record["rows"] == len(dataset.good[name])
        assert canary["checked"] == (record["rows"] + 1) // 2 and 5 < canary["psnr_min"] < 60
        assert {e["key"] for e in canary["worst"]} <= set(dataset.good[name])
        checked += canary["checked"]
    quality = json.loads((out / "_summary.json").read_text())["quality"]
    assert quality["checked"] == checked and quality["every"] == 2 and quality["psnr_min"] <= quality["psnr_mean"]
    assert quality["worst"][0]["shard"] in ("part-000000", "part-000001")
    inspect = subprocess.run([sys.executable, str(REPO / "jobs" / "inspect_latents.py"), str(out)],
                             capture_output=True, text=True, timeout=120, cwd=REPO)
    assert inspect.returncode == 0, inspect.stderr
    assert f"PSNR mean {quality['psnr_mean']:.2f} dB" in inspect.stdout and quality["worst"][0]["key"] in inspect.stdout
