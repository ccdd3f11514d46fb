"""``_job.json``: what defines an output's latents, so a re-run can tell it continues the same output.

The identity is the model (config and weights), the read, encode and store settings and the
compute dtype: not the list of input shards, so a dataset that grows is resumed, its new shards
encoded and its committed ones kept (see sink.py for shards whose source changed).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..text.identity import TextEncoderIdentity

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


@dataclass(frozen=True)
class ModelIdentity:
    """The model that makes an output's latents: its config (read before anything starts) and the checksum of
    its weights (known once an encoder has loaded them)."""

    source: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    temporal_compression: int | None = None
    weights_sha256: str | None = None

    @classmethod
    def of(cls, vae: Any, source: str) -> ModelIdentity:
        """A loaded ``wfvae.WFVAE``'s identity (its weights hashed)."""
        return cls(source, vae.config.to_dict(), vae.temporal_compression, vae.weights_checksum())

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ModelIdentity:
        data = data or {}
        tc = data.get("temporal_compression")
        return cls(str(data.get("source", "")), dict(data.get("config") or {}), None if tc is None else int(tc),
                   data.get("weights_sha256"))


@dataclass(frozen=True)
class OutputIdentity:
    """What defines an output: its settings (``JobConfig.output_settings``, with the ``auto`` precisions once the
    cluster's devices resolve them), its model, and its text encoder (known once an encoder has loaded it)."""

    settings: dict[str, Any]
    model: ModelIdentity
    text: TextEncoderIdentity | None = None

    @property
    def fingerprint(self) -> str:
        """A short hash of the settings, for file metadata and reports."""
        return hashlib.sha256(json.dumps(self.settings, sort_keys=True).encode()).hexdigest()[:16]

    def differences(self, new: OutputIdentity) -> list[str]:
        """What makes ``new`` a different job. Settings without ``dtype`` (before the cluster resolves it) are
        compared without it, a model without weights (not loaded yet) on its config alone."""
        found = []
        keys = (set(self.settings) | set(new.settings)) - set(IGNORED_SETTINGS)
        if "dtype" not in new.settings:
            keys.discard("dtype")
        for key in sorted(keys):
            then, now = self.settings.get(key), new.settings.get(key)
            if key not in self.settings:
                found.append(f"{key}: not a setting of the version that wrote this output, {now!r} now (leave it "
                             "off to resume it as it was)")
            elif then != now:
                found.append(f"{key}: {then!r} then, {now!r} now")
        if new.model.config and self.model.config != new.model.config:
            found.append("the model's config differs")
        if new.model.weights_sha256 and self.model.weights_sha256 != new.model.weights_sha256:
            found.append("the model's weights differ")
        if new.text is not None:  # (whether a text encoder is used at all, the settings say)
            if self.text is None:
                found.append(f"a text encoder now ({new.text.source}), none then")
            else:
                found += [f"text encoder {difference}" for difference in self.text.differences(new.text)]
        return found

    def with_encoders(self, model: ModelIdentity, text: TextEncoderIdentity | None = None) -> OutputIdentity:
        """The identity once an encoder actor has loaded the model (and the text encoder)."""
        return replace(self, model=model, text=text)


@dataclass(frozen=True)
class Manifest:
    """``_job.json``: an output's identity, every setting of the job that created it (for the record, secrets
    redacted) and the code that wrote it."""

    identity: OutputIdentity
    config: dict[str, Any]
    code_version: str = field(default_factory=code_version)
    created_at: float = field(default_factory=time.time)
    version: int = MANIFEST_VERSION

    @property
    def model(self) -> ModelIdentity:
        return self.identity.model

    def to_dict(self) -> dict[str, Any]:
        text = self.identity.text
        return {"version": self.version, "fingerprint": self.identity.fingerprint,
                "output_settings": self.identity.settings, "config": self.config, "model": asdict(self.model),
                **({"text_encoder": text.to_dict()} if text else {}),
                "code_version": self.code_version, "created_at": self.created_at}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        text = TextEncoderIdentity.from_dict(data["text_encoder"]) if data.get("text_encoder") else None
        identity = OutputIdentity(dict(data.get("output_settings", {})), ModelIdentity.from_dict(data.get("model")),
                                  text)
        return cls(identity, dict(data.get("config", {})), str(data.get("code_version", "")),
                   float(data.get("created_at", 0.0)), data.get("version", 1))

    def refuse(self, url: str, new: OutputIdentity) -> None:
        """Raises OutputConflict naming what makes ``new`` define other latents than this output holds."""
        if not isinstance(self.version, int) or self.version > MANIFEST_VERSION:
            raise OutputConflict(f"{url} was written by a newer version of this job (_job.json version "
                                 f"{self.version}, this one reads up to {MANIFEST_VERSION}); use that version, another "
                                 "--output, or --overwrite to delete it and start over")
        differences = self.identity.differences(new)
        if differences:
            raise OutputConflict(f"{url} holds the output of a different job ({'; '.join(differences)}). Re-run with "
                                 "the original settings to resume it, use another --output, or pass --overwrite to "
                                 "delete it and start over")
