"""What a run will do, decided before anything starts: every setting checked, the shards listed (a missing one
refused unless allowed), the model's config read and its weights' header checked where the run will load
them, the settings checked against the model, and the first samples of a few shards read to check that the
caption key finds captions. The run and the dry run make the same Plan, so the dry run refuses what the run
refuses, with the same words; nothing here writes anything.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from typing import Any

from wfvae.config import WFVAEConfig
from wfvae.loading import check_weights, read_config

from ..dtypes import resolve_dtype
from ..output.layout import shard_name
from ..output.manifest import ModelIdentity, OutputIdentity
from ..output.resume import duplicate_names
from ..reading import ReadConfig, Sample, iter_samples, list_shards
from .config import ConfigError, JobConfig, check_against_model
from .paths import has_scheme

PROBED_SHARDS = 3  # shards whose first sample is read before the run (and by the dry run)


def model_config(model: str, storage_options: dict[str, Any] | None = None) -> WFVAEConfig:
    """The model's config.json, and its weights checked in place (their header, not their values): enough to
    check the settings, and to refuse a wrong model before anything is written."""
    try:
        config = read_config(model, storage_options)
        check_weights(model, storage_options)
    except (FileNotFoundError, ValueError) as err:
        raise ConfigError(f"--model: {err}") from None
    return config


def text_model_config(source: str, storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The text encoder's config.json, read and checked (a T5-family model) without transformers."""
    from ..text.loading import check_model_type, read_text_config

    try:
        config = read_text_config(source, storage_options)
        check_model_type(config, source)
    except (FileNotFoundError, ValueError) as err:
        raise ConfigError(f"--text-encoder: {err}") from None
    return config


class Plan:
    def __init__(self, job: JobConfig) -> None:
        self.job = job
        self.run_id = uuid.uuid4().hex[:8]
        allow_missing = job.where.allow_missing_shards
        try:
            listed = list_shards(job.where.input, job.where.storage_options, allow_missing=allow_missing)
        except (ValueError, OSError) as err:
            flag = " (--allow-missing-shards)" if "allow missing" in str(err) else ""
            raise ConfigError(f"--input: {err}{flag}") from None
        self.urls, self.missing = listed.urls, [shard_name(url) for url in listed.missing]
        self.names = [shard_name(u) for u in self.urls]
        duplicates = duplicate_names(self.names)
        if duplicates:
            raise ConfigError(f"--input: several shards share the file name(s) {duplicates[:5]}; outputs are named "
                              "after shard file names, so run one job (with its own --output) per folder")
        self.model = model_config(job.where.model, job.where.model_options)
        if job.text.text_encoder is not None:
            text_model_config(job.text.text_encoder, job.where.model_options)
        self.read_config = check_against_model(job, self.model.temporal_compression)
        self.notes = check_captions(self.read_config, self.urls[:PROBED_SHARDS], job.where.storage_options)

    def identity(self, on_gpu: bool | None = None) -> OutputIdentity:
        """What the output must hold: ``auto`` precisions are known once the cluster's devices are (``on_gpu``;
        before that, they are left out of the comparison)."""
        settings = self.job.output_settings()
        for name in ("dtype", "text_dtype"):
            if settings.get(name) == "auto":
                if on_gpu is None:
                    del settings[name]
                else:
                    settings[name] = resolve_dtype("auto", on_gpu)
        model = ModelIdentity(self.job.where.model, self.model.to_dict(), self.model.temporal_compression)
        return OutputIdentity(settings, model)


def check_captions(config: ReadConfig, urls: list[str], storage_options: dict[str, Any] | None) -> list[str]:
    """The first sample of each of ``urls``, read as the run reads it: a caption key that finds no caption in
    any of them is refused (ConfigError naming the parts they do have); the default key (``txt``) finding none
    is a note (training without captions is real). Returns the notes to print."""
    if config.caption_key is None:
        return []
    samples = []
    for url in urls:  # one sample with a caption settles it: usually the first shard's first
        sample = _first_sample(url, config, storage_options)
        if sample is not None and sample.caption is not None:
            return []
        samples += [sample] if sample is not None else []
    if not samples:
        return []
    parts = sorted({part for sample in samples for part in sample.parts})
    found = (f"no caption in the first sample of {len(samples)} shard(s) with the caption key "
             f"{config.caption_key!r}: their parts are {parts}")
    if config.caption_key != _default("caption_key"):
        raise ConfigError(f"--caption-key: {found}; give the part that holds the caption ('txt') or json:FIELD "
                          "for a field of the json part ('json:caption', dotted for nested fields)")
    return [f"note: {found}; their rows will have no caption (set --caption-key to the part or json:FIELD that "
            "holds them)"]


def _first_sample(url: str, config: ReadConfig, storage_options: dict[str, Any] | None) -> Sample | None:
    """None for a local file that cannot be read twice (a FIFO): the probe would take what the run needs."""
    if not has_scheme(url) and os.path.exists(url) and not os.path.isfile(url):
        return None
    samples = iter_samples(url, config, storage_options)
    try:
        return next((item for item in samples if isinstance(item, Sample)), None)
    finally:
        samples.close()


def _default(name: str) -> Any:
    return next(f.default for f in dataclasses.fields(ReadConfig) if f.name == name)
