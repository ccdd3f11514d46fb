"""The encode job's configuration: four sections, filled from a YAML file and CLI flags.

``where`` (input, output, model, storage), ``read`` (the reader's own ``ReadConfig``: clips, sizes,
captions, decoder), ``latents`` (what is stored) and ``run`` (how the work is spread and paced).
Each setting is one field (``pipeline/settings.py``) with its default, check and help; the flags
are generated from them, and every value is checked before any work starts. The sections that
define an output (``DEFINES_OUTPUT``) make ``output_settings()``: a re-run with other ``run``
settings (actors, batch size, chunking) resumes, while a different clip spec is refused instead of
mixing two datasets in one folder. Where the input and the model are is not part of it: they are
identified by content (see driver.Plan).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from ..dtypes import COMPUTE_DTYPE_CHOICES, LATENT_DTYPES
from ..reading.config import ReadConfig
from ..text.settings import DEFAULT_MAX_TEXT_TOKENS, TEXT_DTYPE_CHOICES, check_max_text_tokens
from ..settings import (ConfigError, boolean, check_fields, flag_fields, integer, mapping, non_empty_text, number,
                        one_of, optional, setting)
from .paths import absolute, absolute_model, has_scheme, inside_ray_temp

ROOT = Path(__file__).resolve().parents[2]
DEMO_INPUT = str(ROOT / "demo" / "shards" / "demo-{000000..000001}.tar")
DEMO_MODEL = str(ROOT / "demo" / "model")
DEMO_OUTPUT = "out/demo"

STORE = ("mean", "moments")


def _json_object(value: Any) -> Any:
    """--storage-options text -> dict (a YAML mapping is taken as it is; the check refuses the rest)."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as err:
        raise ConfigError(f"not valid JSON ({err}); e.g. "
                          '\'{"client_kwargs": {"endpoint_url": "http://minio:9000"}}\'') from None


def _ray_address(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigError(f"must be host:port, ray://host:port or auto, got {value!r}")
    return value


_PATH = non_empty_text("a non-empty path or URL")
_POSITIVE = integer(1, "a positive integer")
_SECONDS = number(0, inclusive=False, what="a positive number of seconds")
_AUTO = "auto: bfloat16 on GPU, float32 on CPU"


@dataclass(frozen=True)
class Where:
    """Where the shards, the output and the model are, and what to do with an output folder in use."""

    DEFINES_OUTPUT: ClassVar[bool] = False  # the input and the model are identified by content (Plan)

    input: str = setting(DEMO_INPUT, "shards: brace range, glob, a folder of shards, a text file listing URLs, or "
                                     "any fsspec URL", _PATH, shown="the bundled demo shards")
    output: str = setting(DEMO_OUTPUT, "output folder, local path or fsspec URL such as s3://bucket/latents", _PATH)
    model: str = setting(DEMO_MODEL, "WF-VAE folder (config.json + weights), *.ckpt, Hugging Face repo id, or either "
                                     "layout at an fsspec URL such as s3://bucket/models/WF-VAE-L-16Chn/ (read with "
                                     "--model-storage-options, else --storage-options; fetched once per node into "
                                     "$WFVAE_CACHE)", _PATH, shown="the bundled demo model")
    storage_options: dict[str, Any] = setting(
        help="fsspec storage options as JSON, for input and output "
             "(e.g. '{\"client_kwargs\": {\"endpoint_url\": \"http://host:9000\"}}')",
        check=mapping, factory=dict, shown="none", parse=_json_object)
    model_storage_options: dict[str, Any] | None = setting(
        None, "fsspec storage options as JSON for --model alone, when the model lives elsewhere than the data",
        optional(mapping), shown="--storage-options", parse=_json_object)
    shared_output: bool = setting(False, "a local --output path is shared storage mounted on every node (needed on "
                                         "multi-node clusters)", boolean)
    overwrite: bool = setting(False, "delete whatever the output folder holds and start over (needed to reuse a "
                                     "folder written with different settings); never while another job holds it",
                              boolean)
    wait: bool = setting(False, "if another job holds the output, wait for it to finish instead of exiting", boolean)
    allow_missing_shards: bool = setting(False, "go on without the shards a brace range or list file names that do "
                                                "not exist (the summary counts them); without it they are refused",
                                         boolean)

    def __post_init__(self) -> None:
        check_fields(self)
        # Local paths mean what they mean where the command was typed (paths.py): absolute from here on.
        object.__setattr__(self, "input", absolute(self.input))
        object.__setattr__(self, "output", absolute(self.output))
        object.__setattr__(self, "model", absolute_model(self.model))
        if not has_scheme(self.output) and inside_ray_temp(self.output):
            raise ConfigError(f"{self.output} is inside Ray's temporary folders (with `ray job submit --working-dir`, "
                              "a relative --output lands in Ray's unpacked copy of the working dir, which Ray "
                              "deletes): give an absolute path on storage every node mounts, or an object store URL "
                              "(s3://...)", "output", as_flag=True)

    @property
    def model_options(self) -> dict[str, Any]:
        """fsspec options for reading --model: its own, else --storage-options."""
        return self.storage_options if self.model_storage_options is None else self.model_storage_options


@dataclass(frozen=True)
class Latents:
    """What is computed and stored for each clip."""

    DEFINES_OUTPUT: ClassVar[bool] = True

    dtype: str = setting("auto", f"compute precision ({_AUTO})", one_of(COMPUTE_DTYPE_CHOICES, f" ({_AUTO})"),
                         choices=COMPUTE_DTYPE_CHOICES)
    latent_dtype: str = setting("bfloat16", "stored latent precision", one_of(tuple(LATENT_DTYPES)),
                                choices=tuple(LATENT_DTYPES))
    store: str = setting("mean", "store the posterior mean, or moments: mean and logvar (to sample at training time)",
                         one_of(STORE), choices=STORE)

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class Text:
    """Each caption's text-encoder embedding, computed once per sample beside its latents (optional)."""

    DEFINES_OUTPUT: ClassVar[bool] = True  # the encoder itself by content, as the model (Plan)

    text_encoder: str | None = setting(
        None, "a T5-family text encoder (T5, mT5, umT5: a full encoder-decoder checkpoint gives its encoder) and "
              "its tokenizer: Hugging Face id, local folder, or a folder at an fsspec URL (read with "
              "--model-storage-options, else --storage-options; fetched once per node)",
        optional(_PATH), shown="none: no text embeddings")
    max_text_tokens: int = setting(DEFAULT_MAX_TEXT_TOKENS, "captions are cut to this many tokens, EOS included "
                                   "(512: Wan 2.1, Open-Sora-Plan v1.3; 226: CogVideoX; 128: LTX-Video)",
                                   check_max_text_tokens, arg_type=int)
    text_dtype: str = setting("auto", f"text encoder precision, and the embeddings' ({_AUTO})",
                              one_of(TEXT_DTYPE_CHOICES, f" ({_AUTO})"), choices=TEXT_DTYPE_CHOICES)

    def __post_init__(self) -> None:
        check_fields(self)
        if self.text_encoder is not None:
            object.__setattr__(self, "text_encoder", absolute_model(self.text_encoder))


@dataclass(frozen=True)
class Run:
    """How the work is spread over the cluster and paced; changing these never changes the output."""

    DEFINES_OUTPUT: ClassVar[bool] = False

    num_actors: int | None = setting(None, "encoder actors", optional(_POSITIVE),
                                     shown="one per GPU, or 1 without GPUs", arg_type=int)
    gpus_per_actor: float | None = setting(
        None, "GPUs per encoder actor, fractions allowed; 0 runs on CPU",
        optional(number(0, inclusive=True, what="a non-negative number (fractions share a GPU; 0 runs on CPU)")),
        shown="1 with GPUs, else 0", arg_type=float)
    decode_workers: int | None = setting(
        None, "decode worker processes per encoder actor: on its node when it has room, else on any node with a "
              "free CPU", optional(_POSITIVE),
        shown="its share of the cluster's CPUs that no encoder needs, taken again as each shard starts", arg_type=int)
    decode_start_seconds: float = setting(
        30.0, "a decode worker not running this long after it was asked for (no CPU free for it, e.g. its node "
              "went away) hands its samples to a running one; with none running and no CPU free, the job ends "
              "saying what to add", _SECONDS, arg_type=float)
    batch_size: int = setting(4, "video clips of the same shape encoded together", _POSITIVE, arg_type=int)
    image_batch_size: int | None = setting(
        None, "images of the same shape encoded together (an image is a one-frame clip)", optional(_POSITIVE),
        shown="as many images as a video batch has latent frames: --batch-size x (1 + (--num-frames - 1) / the "
              "model's temporal compression), about the same work and memory", arg_type=int)
    chunk_frames: int | None = setting(
        None, "encode long clips through the Causal Cache in chunks of this many frames",
        optional(integer(1, "a positive multiple of the model's temporal compression")),
        shown="whole clip; 8x the temporal compression with --clips whole", arg_type=int)
    max_shard_attempts: int = setting(3, "give up on a shard after this many failed attempts", _POSITIVE, arg_type=int)
    lease_seconds: float = setting(60.0, "a job's hold on its output lapses this long after its last heartbeat, e.g. "
                                         "when the job was killed", _SECONDS, arg_type=float)
    grace_seconds: float = setting(20.0, "on SIGTERM/SIGINT, time running shards get to commit before they are "
                                         "abandoned", number(0, inclusive=True, what="a number of seconds >= 0"),
                                   arg_type=float)
    progress_seconds: float = setting(10.0, "seconds between progress lines", _SECONDS, arg_type=float)
    ray_address: str | None = setting(None, "Ray cluster to join: host:port, ray://host:port, auto, or local (a "
                                            "private local runtime, even when a cluster runs on this machine; it "
                                            "ends with the job, a killed one too)", _ray_address,
                                      shown="RAY_ADDRESS, else the running cluster, else a local one")
    check_every: int | None = setting(
        None, "quality canary: decode every Nth clip (the first of each shard included) on the "
              "encoder's device; PSNR against the source goes into the commit records and the summary",
        optional(integer(1, "a positive integer", " (decode every Nth clip)")), shown="off", arg_type=int)

    def __post_init__(self) -> None:
        check_fields(self)


def _job_read_section() -> ReadConfig:
    return ReadConfig(temporal_compression=None)


@dataclass(frozen=True)
class JobConfig:
    """Build it with ``make_config``/``JobConfig.from_flags`` (settings named as the flags), or from sections."""

    where: Where = field(default_factory=Where)
    read: ReadConfig = field(default_factory=_job_read_section)  # temporal compression: None until the model is read
    latents: Latents = field(default_factory=Latents)
    text: Text = field(default_factory=Text)
    run: Run = field(default_factory=Run)

    @classmethod
    def from_flags(cls, **settings: Any) -> JobConfig:
        """``JobConfig.from_flags(input=..., num_frames=33, batch_size=8)``: see ``make_config``."""
        return make_config(settings)

    def sections(self) -> list[Any]:
        return [getattr(self, f.name) for f in dataclasses.fields(self)]

    def output_settings(self) -> dict[str, Any]:
        """The settings that define what is written (input and model are identified by content, in Plan). The
        image settings only where images are read: an output written before they existed resumes without them."""
        settings = {name: value for section in self.sections() if section.DEFINES_OUTPUT
                    for name, value in _settings_of(section).items()}
        if not self.read.image_extensions:
            del settings["image_extensions"], settings["max_image_pixels"]
        del settings["text_encoder"]  # by content: the encoder's identity (weights, tokenizer) is in _job.json
        if self.text.text_encoder is None:
            del settings["max_text_tokens"], settings["text_dtype"]
        return settings

    def to_dict(self) -> dict[str, Any]:
        """Every setting by its flag's name (what ``make_config`` takes back): _job.json's ``config``."""
        return {name: value for section in self.sections() for name, value in _settings_of(section).items()}

    def public_dict(self) -> dict[str, Any]:
        """to_dict without secrets (storage credentials), for _job.json and logs."""
        data = self.to_dict()
        data["storage_options"] = _redact(self.where.storage_options)
        data["model_storage_options"] = _redact(self.where.model_storage_options)
        return data


def _settings_of(section: Any) -> dict[str, Any]:
    return {f.name: _plain(getattr(section, f.name)) for f in flag_fields(section)}


def _plain(value: Any) -> Any:
    """Tuples as lists, dicts copied: as JSON writes and reads them."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _redact(options: Any) -> Any:
    if isinstance(options, dict):
        return {k: "***" if re.search(r"key|secret|token|password|credential", k, re.I) and not isinstance(v, dict)
                else _redact(v) for k, v in options.items()}
    return options


# Setting name -> (section name, its field). Flag names are unique over the sections.
SETTINGS: dict[str, tuple[str, dataclasses.Field]] = {
    f.name: (name, f) for name, section in typing.get_type_hints(JobConfig).items() for f in flag_fields(section)}


def check_against_model(config: JobConfig, temporal_compression: int) -> ReadConfig:
    """The checks that need the model (clip lengths and chunk sizes fit its compression); returns
    the reader's settings for it."""
    tc = temporal_compression
    try:
        read = config.read.for_model(tc)
    except ConfigError as err:
        raise err.named_as_flag() from None
    chunk_frames = config.run.chunk_frames
    if chunk_frames is not None and chunk_frames % tc:
        raise ConfigError(f"must be a multiple of the model's temporal compression ({tc}), got {chunk_frames}",
                          "chunk_frames", as_flag=True)
    return read


# -- parsing -----------------------------------------------------------------------------

def shown_default(f: dataclasses.Field) -> str:
    """A setting's default as the help (and the README's flag table) show it."""
    shown = f.metadata.get("shown")
    if shown is not None:
        return shown
    value = f.default
    if isinstance(value, tuple) and value and isinstance(value[0], int):
        return "x".join(map(str, value))
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="encode_dataset.py", allow_abbrev=False,
        description="Encode WebDataset video shards to WF-VAE latents in Parquet, on a Ray cluster or locally. "
                    "Re-running the same command resumes: committed shards are skipped.")
    parser.add_argument("--config", type=Path,
                        help="YAML file of these settings (keys as the flags, with _ or -; the sections where, read, "
                             "latents, text and run may group them); flags override it")
    for name, (_, f) in SETTINGS.items():
        flag, help_text = "--" + name.replace("_", "-"), f.metadata["help"]
        if isinstance(f.default, bool):  # an off switch: the flag turns it on
            parser.add_argument(flag, action="store_true", default=None, help=help_text)
        else:
            parser.add_argument(flag, type=f.metadata["arg_type"], choices=f.metadata["choices"],
                                help=f"{help_text} (default: {shown_default(f)})".replace("%", "%%"))
    parser.add_argument("--dry-run", action="store_true",
                        help="the run's pre-flight: every check it makes before starting its encoders, exiting as it "
                             "would (2, or 1 for an output another job holds); then the shards by state, the first "
                             "sample of a few shards to encode probed, and an estimate of what the run would write; "
                             "nothing is written, Ray is not started")
    return parser


def flag_table() -> str:
    """The README's table of the job's flags, from the parser (so from the settings' own help and defaults):
    ``python -m pipeline.job.config`` prints it, and a test holds the README to it."""
    rows = ["| flag | meaning (default) |", "|---|---|"]
    for action in build_parser()._actions:
        if action.option_strings and action.dest != "help":
            text = (action.help or "").replace("%%", "%").replace("|", "\\|")
            rows.append(f"| `{action.option_strings[-1]}` | {text} |")
    return "\n".join(rows)


def config_from_args(argv: list[str] | None = None) -> JobConfig:
    args = build_parser().parse_args(argv)
    values: dict[str, Any] = {}
    if args.config is not None:
        values.update(load_yaml(args.config))
    values.update({k: v for k, v in vars(args).items() if v is not None and k not in ("config", "dry_run")})
    return make_config(values)


def load_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"--config: {path} does not exist") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"--config: {path} is not valid YAML ({err})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"--config: {path} must hold a mapping of settings, got {type(data).__name__}")
    return _flat(data)


def _flat(values: dict[str, Any]) -> dict[str, Any]:
    """Keys as the flags (``num-frames`` or ``num_frames``); a section (``read: {num_frames: 33}``) is
    taken as its settings."""
    sections = {f.name for f in dataclasses.fields(JobConfig)}
    flat: dict[str, Any] = {}
    for key, value in values.items():
        key = str(key).replace("-", "_")
        if key in sections and isinstance(value, dict):
            flat.update(_flat(value))
        else:
            flat[key] = value
    return flat


def make_config(values: dict[str, Any]) -> JobConfig:
    """A JobConfig from settings named as the flags (text or values, as in YAML); a bad one raises
    ConfigError naming its flag. Buckets given without a resolution replace the default resolution."""
    values = _flat(values)
    unknown = sorted(set(values) - set(SETTINGS))
    if unknown:
        raise ConfigError(f"unknown settings {unknown}; known: {sorted(SETTINGS)}")
    if values.get("buckets") is not None and "resolution" not in values:
        values["resolution"] = None
    sections: dict[str, dict[str, Any]] = {f.name: {} for f in dataclasses.fields(JobConfig)}
    try:
        for name, value in values.items():
            section, f = SETTINGS[name]
            parse = f.metadata["parse"]
            try:
                sections[section][name] = parse(value) if parse else value
            except ConfigError as err:
                raise ConfigError(err.reason, err.field or name) from None
        return JobConfig(where=Where(**sections["where"]),
                         read=ReadConfig(temporal_compression=None, **sections["read"]),
                         latents=Latents(**sections["latents"]), text=Text(**sections["text"]),
                         run=Run(**sections["run"]))
    except ConfigError as err:
        raise err.named_as_flag() from None


if __name__ == "__main__":
    print(flag_table())
