"""``_job.json``: what defines an output's latents, so a re-run can tell it continues the same output.

The identity is the model (config and weights), the read, encode and store settings and the
compute dtype: not the list of input shards, so a dataset that grows is resumed, its new shards
encoded and its committed ones kept (see sink.py for shards whose source changed).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from .layout import OutputLayout
from .storage import create_exclusively, json_bytes, read_json

ROOT = Path(__file__).resolve().parents[2]
# 2: input and model identified by content, not spelling; 3: the input's shards are not part of the
# identity (a version-2 output resumes: its input_shards are ignored), commit records name their source
MANIFEST_VERSION = 3
IGNORED_SETTINGS = ("input_shards",)  # version 2 kept them


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


def fingerprint(output_settings: dict[str, Any]) -> str:
    """A short hash of the settings that define an output, for file metadata and reports."""
    return hashlib.sha256(json.dumps(output_settings, sort_keys=True).encode()).hexdigest()[:16]


def make_manifest(config: dict[str, Any], output_settings: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
    """``output_settings`` define the output; ``model`` is its
    config and weight checksum; ``config`` is every setting, for the record."""
    return {"version": MANIFEST_VERSION, "fingerprint": fingerprint(output_settings),
            "output_settings": output_settings, "config": config, "model": model, "code_version": code_version(),
            "created_at": time.time()}


def check_or_create(layout: OutputLayout, manifest: dict[str, Any]) -> str:
    """Returns "created" or "resumed"; raises OutputConflict for a different job's output.

    ``_job.json`` is created with a create-if-absent: of two jobs racing (which the output's
    lease already prevents), one creates it and the other compares against it.
    """
    if not layout.exists() and _has_results(layout):
        raise OutputConflict(f"{layout.url} already holds files but no _job.json; choose an empty output "
                             "folder, or pass --overwrite to replace its contents")
    if create_exclusively(layout.fs, layout.job_manifest, json_bytes(manifest)):
        return "created"
    refuse_differences(layout, read_json(layout.fs, layout.job_manifest), manifest)
    return "resumed"


def refuse_differences(layout: OutputLayout, existing: dict[str, Any], new: dict[str, Any]) -> None:
    """Raises OutputConflict naming what makes ``new`` define other latents than ``existing``."""
    version = existing.get("version", 1)
    if not isinstance(version, int) or version > MANIFEST_VERSION:
        raise OutputConflict(f"{layout.url} was written by a newer version of this job (_job.json version "
                             f"{version}, this one reads up to {MANIFEST_VERSION}); use that version, another "
                             "--output, or --overwrite to delete it and start over")
    differences = describe_differences(existing, new)
    if differences:
        raise OutputConflict(f"{layout.url} holds the output of a different job ({'; '.join(differences)}). "
                             "Re-run with the original settings to resume it, use another --output, or pass "
                             "--overwrite to delete it and start over")


def describe_differences(existing: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What makes ``new`` a different job: output settings, model config or weights. A model section
    without weights (not loaded yet) is compared on its config alone; a new section without dtype
    (resolved on the cluster) is compared without it."""
    old_model, new_model = existing.get("model", {}), new.get("model", {})
    found = []
    old_settings, new_settings = existing.get("output_settings", {}), new["output_settings"]
    keys = (set(old_settings) | set(new_settings)) - set(IGNORED_SETTINGS)
    if "dtype" not in new_settings:
        keys.discard("dtype")
    for key in sorted(keys):
        if old_settings.get(key) != new_settings.get(key):
            found.append(f"{key}: {old_settings.get(key)!r} then, {new_settings.get(key)!r} now")
    if "config" in new_model and old_model.get("config") != new_model.get("config"):
        found.append("the model's config differs")
    if new_model.get("weights_sha256") and old_model.get("weights_sha256") != new_model["weights_sha256"]:
        found.append("the model's weights differ")
    return found


def clear(layout: OutputLayout) -> None:
    """Delete a job's output (not the lease of the job doing it)."""
    for folder in ("latents", "errors", "_committed", "_given_up", "_runs"):
        path = f"{layout.root}/{folder}"
        if layout.fs.exists(path):
            layout.fs.rm(path, recursive=True)
    for path in (layout.job_manifest, layout.summary):
        if layout.fs.exists(path):
            layout.fs.rm(path)
    layout.refresh()


def _has_results(layout: OutputLayout) -> bool:
    return any(layout.fs.exists(f"{layout.root}/{folder}") for folder in ("latents", "_committed"))
