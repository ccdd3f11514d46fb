"""What a run will do, decided before anything starts: every setting checked, the shards listed, the model's
config read and the settings checked against it. The run and the dry run make the same Plan."""

from __future__ import annotations

import uuid
from typing import Any

from wfvae.config import WFVAEConfig
from wfvae.loading import read_config

from ..output.layout import shard_name
from ..output.manifest import ModelIdentity, OutputIdentity
from ..output.resume import duplicate_names
from ..reading import list_shards
from .config import ConfigError, JobConfig, check_against_model


def model_config(model: str, storage_options: dict[str, Any] | None = None) -> WFVAEConfig:
    """The model's config.json alone: enough to check settings before any actor loads weights."""
    try:
        return read_config(model, storage_options)
    except (FileNotFoundError, ValueError) as err:
        raise ConfigError(f"--model: {err}") from None


class Plan:
    def __init__(self, job: JobConfig) -> None:
        self.job = job
        self.run_id = uuid.uuid4().hex[:8]
        try:
            urls = list_shards(job.where.input, job.where.storage_options).urls
        except (ValueError, OSError) as err:
            raise ConfigError(f"--input: {err}") from None
        if not urls:
            raise ConfigError(f"--input: {job.where.input!r} matches no shards")
        self.urls = urls
        self.names = [shard_name(u) for u in urls]
        duplicates = duplicate_names(self.names)
        if duplicates:
            raise ConfigError(f"--input: several shards share the file name(s) {duplicates[:5]}; outputs are named "
                              "after shard file names, so run one job (with its own --output) per folder")
        self.model = model_config(job.where.model, job.where.model_options)
        self.read_config = check_against_model(job, self.model.temporal_compression)

    def identity(self, compute_dtype: str | None = None) -> OutputIdentity:
        """What the output must hold: with ``--dtype auto`` the compute dtype is known once the cluster's devices
        are (before that, it is left out of the comparison)."""
        settings = self.job.output_settings()
        if compute_dtype is not None:
            settings["dtype"] = compute_dtype
        elif settings["dtype"] == "auto":
            settings.pop("dtype")
        model = ModelIdentity(self.job.where.model, self.model.to_dict(), self.model.temporal_compression)
        return OutputIdentity(settings, model)
