"""A quality canary: every Nth clip is decoded again on the encoder's device and compared with
its source frames (PSNR, uint8 RGB, peak 255).

Latents cannot be checked by looking at them. A wrong model, a colour-range mistake ([0, 1]
instead of [-1, 1]) or a broken source still produce latents of the right shape; decoding a few
shows it in the first shard instead of after weeks of training. The decoded latent is the
*stored* one (after conversion to the output's precision), so the check covers what training
will read. A shard's results travel in its commit record (``"canary"``) and merge across
records: the summary reports the mean, the minimum and the worst clips.

Whole-video clips streamed through the Causal Cache in pieces are not checked (their frames are
never held at once).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
import torch

WORST_KEPT = 5  # worst clips kept per shard and in the summary
_MSE_FLOOR = 1e-10  # identical clips: ~148 dB instead of infinity, so records stay plain JSON


@dataclass
class CanaryResults:
    """One shard's checks (or, merged, a whole output's); a plain dict in the commit record."""

    every: int = 0
    seen: int = 0  # clips offered (checked: every ``every``-th of them, the first included)
    checked: int = 0
    psnr_sum: float = 0.0
    psnr_min: float | None = None
    worst: list[dict[str, Any]] = field(default_factory=list)  # {"key", "clip", "psnr"[, "shard"]}
    seconds: float = 0.0

    def add(self, key: str, clip: int, value: float, shard: str | None = None) -> None:
        self.checked += 1
        self.psnr_sum += value
        self.psnr_min = value if self.psnr_min is None else min(self.psnr_min, value)
        entry = {"key": key, "clip": clip, "psnr": round(value, 3), **({"shard": shard} if shard else {})}
        self.worst = sorted([*self.worst, entry], key=lambda e: e["psnr"])[:WORST_KEPT]

    @property
    def psnr_mean(self) -> float | None:
        return self.psnr_sum / self.checked if self.checked else None

    def merge(self, other: "CanaryResults", shard: str | None = None) -> "CanaryResults":
        """Combined results; ``shard`` labels ``other``'s worst clips (records do not carry it)."""
        worst = [*self.worst, *({**e, "shard": e.get("shard", shard)} if shard else e for e in other.worst)]
        minimum = [v for v in (self.psnr_min, other.psnr_min) if v is not None]
        return CanaryResults(max(self.every, other.every), self.seen + other.seen, self.checked + other.checked,
                             self.psnr_sum + other.psnr_sum, min(minimum) if minimum else None,
                             sorted(worst, key=lambda e: e["psnr"])[:WORST_KEPT], self.seconds + other.seconds)

    def to_dict(self) -> dict[str, Any]:
        return {"every": self.every, "seen": self.seen, "checked": self.checked, "psnr_sum": self.psnr_sum,
                "psnr_min": self.psnr_min, "worst": self.worst, "seconds": round(self.seconds, 3)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "CanaryResults":
        data = data or {}
        return cls(int(data.get("every", 0)), int(data.get("seen", 0)), int(data.get("checked", 0)),
                   float(data.get("psnr_sum", 0.0)), data.get("psnr_min"), list(data.get("worst", [])),
                   float(data.get("seconds", 0.0)))


class QualityCanary:
    """Holds the model and the rule; ``observe`` is called for every encoded clip of a shard."""

    def __init__(self, vae: Any, every: int, latent_dtype: torch.dtype | None = None,
                 chunk_frames: int | None = None) -> None:
        """``vae`` a wfvae.WFVAE; ``latent_dtype`` the stored precision; ``chunk_frames`` latent frames
        per decoder call (None: whole clip)."""
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"check every N clips needs a positive integer N, got {every!r}")
        self.vae, self.every, self.latent_dtype, self.chunk_frames = vae, every, latent_dtype, chunk_frames

    def results(self) -> CanaryResults:
        """Fresh results for a shard attempt."""
        return CanaryResults(every=self.every)

    def observe(self, results: CanaryResults, key: str, clip: int, frames: np.ndarray,
                mean: torch.Tensor) -> float | None:
        """Check this clip if it is the first, or an ``every``-th one, of the shard; returns its PSNR
        if checked."""
        results.seen += 1
        if (results.seen - 1) % self.every:
            return None
        began = time.perf_counter()
        value = self.psnr(frames, mean)
        results.add(key, clip, value)
        results.seconds += time.perf_counter() - began
        return value

    @torch.inference_mode()
    def psnr(self, frames: np.ndarray, mean: torch.Tensor) -> float:
        """PSNR in dB of the decoded ``mean`` (C, t, h, w) against the source ``frames`` (T, H, W, 3)
        uint8, computed on the model's device."""
        latent = mean if self.latent_dtype is None else mean.to(self.latent_dtype)
        decoded = self.vae.decode(latent[None].to(self.vae.device, self.vae.dtype), chunk_frames=self.chunk_frames)[0]
        pixels = decoded.float().clamp_(-1, 1).add_(1).mul_(127.5).round_()  # as a uint8 frame would hold
        # a copy: frames fetched from Ray's object store are read-only, which torch warns about
        source = torch.from_numpy(np.array(frames, dtype=np.uint8)).to(pixels.device).permute(3, 0, 1, 2).float()
        length = min(source.shape[1], pixels.shape[1])
        if source.shape[0] != 3 or source.shape[2:] != pixels.shape[2:] or length < 1:
            raise ValueError(f"source frames {tuple(frames.shape)} do not match the decoded clip "
                             f"{tuple(pixels.shape)} (expected (T, H, W, 3) uint8 of the encoded clip)")
        mse = float((source[:, :length] - pixels[:, :length]).square().mean())
        return 10.0 * math.log10(255.0 ** 2 / max(mse, _MSE_FLOOR))


def merge_records(records: dict[str, dict[str, Any]]) -> CanaryResults:
    """The canary results of commit records by shard (records without any are skipped)."""
    merged = CanaryResults()
    for shard, record in sorted(records.items()):
        if record.get("canary"):
            merged = merged.merge(CanaryResults.from_dict(record["canary"]), shard=shard)
    return merged


def quality_summary(records: dict[str, dict[str, Any]] | Iterable[tuple[str, dict]]) -> dict[str, Any] | None:
    """``{"every", "checked", "psnr_mean", "psnr_min", "worst"}`` over all records; None without checks."""
    merged = merge_records(dict(records))
    if not merged.checked:
        return None
    return {"every": merged.every, "checked": merged.checked, "psnr_mean": round(merged.psnr_mean, 3),
            "psnr_min": round(merged.psnr_min, 3), "worst": merged.worst, "seconds": round(merged.seconds, 3)}


def format_quality(quality: dict[str, Any] | None) -> str:
    """One line for the job's summary and inspect_latents.py."""
    if not quality:
        return "not checked (--check-every N decodes every Nth clip and compares it with its source)"
    worst = ", ".join(f"{e.get('shard', '?')}/{e['key']}#{e['clip']} {e['psnr']:.1f}" for e in quality["worst"][:3])
    return (f"PSNR mean {quality['psnr_mean']:.2f} dB, min {quality['psnr_min']:.2f} dB over {quality['checked']} "
            f"decoded clips (every {quality['every']}); worst {worst}")
