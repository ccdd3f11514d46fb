"""``_job.json``: what produced an output folder, so a re-run can tell it is the same job."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

from .layout import OutputLayout
from .storage import read_json, write_json

ROOT = Path(__file__).resolve().parents[2]
MANIFEST_VERSION = 1


class OutputConflict(ValueError):
    """The output folder holds the results of a different job."""


def code_version() -> str:
    """Package version plus a hash of the model and pipeline sources (no git needed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        package = version("wfvae-latents")
    except PackageNotFoundError:
        package = "unknown"
    digest = hashlib.sha256()
    for path in sorted([*ROOT.glob("wfvae/**/*.py"), *ROOT.glob("pipeline/**/*.py")]):
        digest.update(path.relative_to(ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    return f"{package}+{digest.hexdigest()[:12]}"


def make_manifest(config: dict[str, Any], output_settings: dict[str, Any], fingerprint: str,
                  model: dict[str, Any]) -> dict[str, Any]:
    """``output_settings`` are the settings that define the output; ``config`` is everything, for the record."""
    return {"version": MANIFEST_VERSION, "fingerprint": fingerprint, "output_settings": output_settings,
            "config": config, "model": model, "code_version": code_version(), "created_at": time.time()}


def check_or_create(layout: OutputLayout, manifest: dict[str, Any], overwrite: bool) -> str:
    """Returns "created", "resumed" or "overwritten"; raises OutputConflict for a different job."""
    if not layout.exists():
        if _has_results(layout) and not overwrite:
            raise OutputConflict(f"{layout.url} already holds files but no _job.json; choose an empty output "
                                 "folder, or pass --overwrite to replace its contents")
        if overwrite:
            clear(layout)
        write_json(layout.fs, layout.job_manifest, manifest)
        return "created"
    existing = read_json(layout.fs, layout.job_manifest)
    differences = describe_differences(existing, manifest)
    if not differences:
        return "resumed"
    if not overwrite:
        raise OutputConflict(f"{layout.url} holds the output of a different job ({'; '.join(differences)}). "
                             "Re-run with the original settings to resume it, use another --output, or pass "
                             "--overwrite to delete it and start over")
    clear(layout)
    write_json(layout.fs, layout.job_manifest, manifest)
    return "overwritten"


def describe_differences(existing: dict[str, Any], new: dict[str, Any]) -> list[str]:
    if existing.get("fingerprint") == new["fingerprint"] and \
            existing.get("model", {}).get("weights_sha256") == new["model"].get("weights_sha256"):
        return []
    found = []
    old_settings, new_settings = existing.get("output_settings", {}), new["output_settings"]
    for key in sorted(set(old_settings) | set(new_settings)):
        if old_settings.get(key) != new_settings.get(key):
            found.append(f"{key}: {old_settings.get(key)!r} then, {new_settings.get(key)!r} now")
    if existing.get("model", {}).get("weights_sha256") != new["model"].get("weights_sha256"):
        found.append("the model's weights differ")
    return found or ["settings fingerprint differs"]


def clear(layout: OutputLayout) -> None:
    for folder in ("latents", "errors", "_committed", "_given_up"):
        path = f"{layout.root}/{folder}"
        if layout.fs.exists(path):
            layout.fs.rm(path, recursive=True)
    for path in (layout.job_manifest, layout.summary):
        if layout.fs.exists(path):
            layout.fs.rm(path)
    layout.refresh()


def _has_results(layout: OutputLayout) -> bool:
    return any(layout.fs.exists(f"{layout.root}/{folder}") for folder in ("latents", "_committed"))
