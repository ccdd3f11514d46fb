"""The quality canary's results, as commit records and summaries keep them (the checking itself, which
decodes latents on the encoder's device, is ``pipeline.encode.canary``).

A shard's results travel in its commit record and merge across records, exactly in any order: the
summary reports the mean, the minimum and the worst clips of the whole output.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

WORST_KEPT = 5  # worst clips kept per shard and in the summary


@dataclass(frozen=True)
class CheckedClip:
    key: str
    clip: int
    psnr: float
    shard: str | None = None  # set once results of several shards are merged

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "clip": self.clip, "psnr": self.psnr, **({"shard": self.shard} if self.shard else {})}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckedClip:
        return cls(str(data["key"]), int(data["clip"]), float(data["psnr"]), data.get("shard"))


@dataclass
class CanaryResults:
    """One shard's checks (or, merged, a whole output's)."""

    every: int = 0
    seen: int = 0  # clips offered (checked: every ``every``-th of them, the first included)
    checked: int = 0
    psnr_sum: float = 0.0
    psnr_min: float | None = None
    worst: list[CheckedClip] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, key: str, clip: int, value: float) -> None:
        self.checked += 1
        self.psnr_sum += value
        self.psnr_min = value if self.psnr_min is None else min(self.psnr_min, value)
        self.worst = _worst([*self.worst, CheckedClip(key, clip, round(value, 3))])

    @property
    def psnr_mean(self) -> float | None:
        return self.psnr_sum / self.checked if self.checked else None

    def merge(self, other: CanaryResults, shard: str | None = None) -> CanaryResults:
        """Combined results; ``shard`` labels ``other``'s worst clips (a shard's own record does not carry it)."""
        labelled = [replace(clip, shard=clip.shard or shard) for clip in other.worst]
        minimum = [v for v in (self.psnr_min, other.psnr_min) if v is not None]
        return CanaryResults(max(self.every, other.every), self.seen + other.seen, self.checked + other.checked,
                             self.psnr_sum + other.psnr_sum, min(minimum) if minimum else None,
                             _worst([*self.worst, *labelled]), self.seconds + other.seconds)

    def to_dict(self) -> dict[str, Any]:
        return {"every": self.every, "seen": self.seen, "checked": self.checked, "psnr_sum": self.psnr_sum,
                "psnr_min": self.psnr_min, "psnr_mean": self.psnr_mean,
                "worst": [clip.to_dict() for clip in self.worst], "seconds": round(self.seconds, 3)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> CanaryResults | None:
        if not data:
            return None
        return cls(int(data.get("every", 0)), int(data.get("seen", 0)), int(data.get("checked", 0)),
                   float(data.get("psnr_sum", 0.0)), data.get("psnr_min"),
                   [CheckedClip.from_dict(clip) for clip in data.get("worst", [])], float(data.get("seconds", 0.0)))


def _worst(clips: list[CheckedClip]) -> list[CheckedClip]:
    return sorted(clips, key=lambda clip: clip.psnr)[:WORST_KEPT]


def format_quality(quality: CanaryResults | None) -> str:
    """One line for the job's summary and inspect_latents.py."""
    if quality is None or not quality.checked:
        return "not checked (--check-every N decodes every Nth clip and compares it with its source)"
    worst = ", ".join(f"{clip.shard or '?'}/{clip.key}#{clip.clip} {clip.psnr:.1f}" for clip in quality.worst[:3])
    return (f"PSNR mean {quality.psnr_mean:.2f} dB, min {quality.psnr_min:.2f} dB over {quality.checked} decoded "
            f"clips (every {quality.every}); worst {worst}")
