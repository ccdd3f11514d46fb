"""The encode job's configuration: one dataclass, filled from a YAML file and CLI flags.

Every value is checked before any work starts, with a message that names the flag and
says what is allowed. The read settings (clips, sizes, captions, decoder) are a section of
this config: ``read_config()`` builds the reader's ``ReadConfig`` from them, and that class's
own checks are the only ones they get, reported here under the flag's name.
``output_settings()`` holds exactly the fields that change the output, so a re-run with
different runtime knobs (actors, batch size, chunking) still resumes, while a different clip
spec is refused instead of mixing two datasets in one folder. Where the input and the model
are is not part of it: they are identified by content (see driver.Plan).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..reading.config import DECODERS, SHORT_VIDEO_POLICIES, ReadConfig, ReadConfigError
from .paths import absolute, absolute_model, has_scheme, inside_ray_temp

ROOT = Path(__file__).resolve().parents[2]
DEMO_INPUT = str(ROOT / "demo" / "shards" / "demo-{000000..000001}.tar")
DEMO_MODEL = str(ROOT / "demo" / "model")
DEMO_OUTPUT = "out/demo"

CLIP_POLICIES = "first, uniform:N (N >= 1), all, whole"
COMPUTE_DTYPES = ("auto", "float32", "bfloat16", "float16")
LATENT_DTYPES = ("float32", "float16", "bfloat16")
STORE = ("mean", "moments")
SHORT_VIDEOS = SHORT_VIDEO_POLICIES

# Fields that do not change what is written: a re-run may change them and still resume. The input and
# the model are identified by content (resolved shard list, weights checksum and config), not spelling.
RUNTIME_FIELDS = {"input", "output", "model", "chunk_frames", "batch_size", "num_actors", "gpus_per_actor",
                  "decode_workers", "max_shard_attempts", "storage_options", "overwrite", "ray_address",
                  "progress_seconds", "wait", "lease_seconds", "grace_seconds", "shared_output",
                  "check_every", "model_storage_options"}
# The read section: JobConfig field -> ReadConfig field, checked by ReadConfig alone.
READ_FIELDS = ("num_frames", "fps", "clips", "max_frames", "short_videos", "resolution", "buckets",
               "video_extensions", "caption_key", "decoder")


class ConfigError(ValueError):
    """A job setting that is not allowed; the message names the setting and what is allowed."""


@dataclass(frozen=True)
class JobConfig:
    input: str = DEMO_INPUT
    output: str = DEMO_OUTPUT
    model: str = DEMO_MODEL
    num_frames: int = 17
    fps: float | None = None
    clips: str = "first"
    max_frames: int | None = None
    short_videos: str = "skip"
    resolution: tuple[int, int] | None = (256, 256)
    buckets: tuple[tuple[int, int], ...] | None = None
    caption_key: str = "txt"
    video_extensions: tuple[str, ...] = ("mp4", "mkv", "webm", "mov", "avi")
    decoder: str = "pyav"
    chunk_frames: int | None = None
    batch_size: int = 4
    dtype: str = "auto"
    latent_dtype: str = "bfloat16"
    store: str = "mean"
    num_actors: int | None = None
    gpus_per_actor: float | None = None
    decode_workers: int | None = None
    max_shard_attempts: int = 3
    storage_options: dict[str, Any] = field(default_factory=dict)
    overwrite: bool = False
    ray_address: str | None = None
    progress_seconds: float = 10.0
    wait: bool = False
    lease_seconds: float = 60.0
    grace_seconds: float = 20.0
    shared_output: bool = False
    check_every: int | None = None  # quality canary (canary.py): decode every Nth clip, PSNR in the records
    model_storage_options: dict[str, Any] | None = None  # fsspec options for --model (None: storage_options)

    def __post_init__(self) -> None:
        _validate(self)
        self.read_config(temporal_compression=1)  # the read section, checked before the model is known
        # Local paths mean what they mean where the command was typed (paths.py): absolute from here on.
        object.__setattr__(self, "input", absolute(self.input))
        object.__setattr__(self, "output", absolute(self.output))
        object.__setattr__(self, "model", absolute_model(self.model))
        if not has_scheme(self.output) and inside_ray_temp(self.output):
            _fail("output", f"{self.output} is inside Ray's temporary folders (with `ray job submit --working-dir`, "
                            "a relative --output lands in Ray's unpacked copy of the working dir, which Ray deletes): "
                            "give an absolute path on storage every node mounts, or an object store URL (s3://...)")

    def read_config(self, temporal_compression: int) -> ReadConfig:
        """The reader's settings for a model of this temporal compression; ConfigError names the flag."""
        try:
            return ReadConfig(temporal_compression=temporal_compression,
                              **{name: getattr(self, name) for name in READ_FIELDS})
        except ReadConfigError as err:
            flag = err.field if err.field in READ_FIELDS else None
            message = str(err)
            if flag and message.startswith(f"{flag} "):
                message = message[len(flag) + 1:]
            raise ConfigError(f"--{flag.replace('_', '-')}: {message}" if flag else message) from None

    def output_settings(self) -> dict[str, Any]:
        """The settings that define what is written (input and model are identified by content, in Plan)."""
        return {k: v for k, v in self.to_dict().items() if k not in RUNTIME_FIELDS}

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["resolution"] = list(self.resolution) if self.resolution else None
        data["buckets"] = [list(b) for b in self.buckets] if self.buckets else None
        data["video_extensions"] = list(self.video_extensions)
        return data

    def public_dict(self) -> dict[str, Any]:
        """to_dict without secrets (storage credentials), for _job.json and logs."""
        data = self.to_dict()
        data["storage_options"] = _redact(self.storage_options)
        data["model_storage_options"] = _redact(self.model_storage_options)
        return data

    @property
    def model_options(self) -> dict[str, Any]:
        """fsspec options for reading --model: its own, else --storage-options."""
        return self.storage_options if self.model_storage_options is None else self.model_storage_options

    @property
    def whole_videos(self) -> bool:
        return self.clips == "whole"


def _redact(options: Any) -> Any:
    if isinstance(options, dict):
        return {k: "***" if re.search(r"key|secret|token|password|credential", k, re.I) and not isinstance(v, dict)
                else _redact(v) for k, v in options.items()}
    return options


def _fail(name: str, message: str) -> None:
    raise ConfigError(f"--{name.replace('_', '-')}: {message}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    """A finite int or float (not a bool): nan and inf are refused everywhere."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _validate(c: JobConfig) -> None:
    for name in ("input", "output", "model"):
        if not isinstance(getattr(c, name), str) or not getattr(c, name).strip():
            _fail(name, "must be a non-empty path or URL")
    if (c.resolution is None) == (c.buckets is None):
        _fail("resolution", "give exactly one of --resolution and --buckets")
    if c.chunk_frames is not None and (not _is_int(c.chunk_frames) or c.chunk_frames < 1):
        _fail("chunk_frames", f"must be a positive multiple of the model's temporal compression, got {c.chunk_frames!r}")
    if not _is_int(c.batch_size) or c.batch_size < 1:
        _fail("batch_size", f"must be a positive integer, got {c.batch_size!r}")
    if c.dtype not in COMPUTE_DTYPES:
        _fail("dtype", f"must be one of {COMPUTE_DTYPES} (auto: bfloat16 on GPU, float32 on CPU), got {c.dtype!r}")
    if c.latent_dtype not in LATENT_DTYPES:
        _fail("latent_dtype", f"must be one of {LATENT_DTYPES}, got {c.latent_dtype!r}")
    if c.store not in STORE:
        _fail("store", f"must be one of {STORE}, got {c.store!r}")
    if c.num_actors is not None and (not _is_int(c.num_actors) or c.num_actors < 1):
        _fail("num_actors", f"must be a positive integer (default: one per GPU, or 1 without GPUs), got {c.num_actors!r}")
    if c.gpus_per_actor is not None and (not _is_number(c.gpus_per_actor) or c.gpus_per_actor < 0):
        _fail("gpus_per_actor", f"must be a non-negative number (fractions share a GPU; 0 runs on CPU), "
                                f"got {c.gpus_per_actor!r}")
    if c.decode_workers is not None and (not _is_int(c.decode_workers) or c.decode_workers < 1):
        _fail("decode_workers", f"must be a positive integer, got {c.decode_workers!r}")
    if not _is_int(c.max_shard_attempts) or c.max_shard_attempts < 1:
        _fail("max_shard_attempts", f"must be a positive integer, got {c.max_shard_attempts!r}")
    if not isinstance(c.storage_options, dict):
        _fail("storage_options", f"must be a JSON object, got {c.storage_options!r}")
    for name in ("progress_seconds", "lease_seconds"):
        if not _is_number(getattr(c, name)) or getattr(c, name) <= 0:
            _fail(name, f"must be a positive number of seconds, got {getattr(c, name)!r}")
    if not _is_number(c.grace_seconds) or c.grace_seconds < 0:
        _fail("grace_seconds", f"must be a number of seconds >= 0, got {c.grace_seconds!r}")
    for name in ("overwrite", "wait", "shared_output"):
        if not isinstance(getattr(c, name), bool):
            _fail(name, f"must be true or false, got {getattr(c, name)!r}")
    if c.ray_address is not None and (not isinstance(c.ray_address, str) or not c.ray_address.strip()):
        _fail("ray_address", f"must be host:port, ray://host:port or auto, got {c.ray_address!r}")
    if c.model_storage_options is not None and not isinstance(c.model_storage_options, dict):
        _fail("model_storage_options", f"must be a JSON object, got {c.model_storage_options!r}")
    if c.check_every is not None and (not _is_int(c.check_every) or c.check_every < 1):
        _fail("check_every", f"must be a positive integer (decode every Nth clip), got {c.check_every!r}")


def check_against_model(config: JobConfig, temporal_compression: int) -> ReadConfig:
    """The checks that need the model (clip lengths and chunk sizes fit its compression); returns
    the reader's settings for it."""
    tc = temporal_compression
    if not config.whole_videos and (config.num_frames - 1) % tc:
        below = 1 + (config.num_frames - 1) // tc * tc
        _fail("num_frames", f"must be 1 + a multiple of the model's temporal compression ({tc}), e.g. "
                            f"{below} or {below + tc}; got {config.num_frames}")
    if config.chunk_frames is not None and config.chunk_frames % tc:
        _fail("chunk_frames", f"must be a multiple of the model's temporal compression ({tc}), got "
                              f"{config.chunk_frames}")
    return config.read_config(tc)


# -- parsing -----------------------------------------------------------------------------

def _size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", str(text))
    if not match:
        raise ConfigError(f"--resolution/--buckets: {text!r} is not a size; use HxW (e.g. 256x448) or N for NxN")
    height = int(match.group(1))
    return height, int(match.group(2) or height)


def _sizes(value: Any) -> tuple[tuple[int, int], ...]:
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return tuple(_size("x".join(map(str, item)) if isinstance(item, (list, tuple)) else item)
                 for item in items if str(item).strip())


def _extensions(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return tuple(str(item).strip().lstrip(".").lower() for item in items if str(item).strip())


def _storage_options(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as err:
        raise ConfigError(f"--storage-options: not valid JSON ({err}); e.g. "
                          '\'{"client_kwargs": {"endpoint_url": "http://minio:9000"}}\'') from None
    if not isinstance(parsed, dict):
        raise ConfigError(f"--storage-options: must be a JSON object, got {value!r}")
    return parsed


_CONVERTERS = {"resolution": lambda v: None if v is None else _size("x".join(map(str, v)) if isinstance(v, (list, tuple)) else v),
               "buckets": lambda v: None if v is None else _sizes(v),
               "video_extensions": _extensions, "storage_options": _storage_options,
               "model_storage_options": lambda v: None if v is None else _storage_options(v)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="encode_dataset.py",
        description="Encode WebDataset video shards to WF-VAE latents in Parquet, on a Ray cluster or locally. "
                    "Re-running the same command resumes: committed shards are skipped.")
    add = parser.add_argument
    add("--config", type=Path, help="YAML file of these settings (keys as below, with _ or -); flags override it")
    add("--input", help="shards: brace range, glob, text file listing URLs, or any fsspec URL "
                        "(default: the bundled demo shards)")
    add("--output", help="output folder, local path or fsspec URL such as s3://bucket/latents (default: out/demo)")
    add("--model", help="WF-VAE folder (config.json + weights), *.ckpt, Hugging Face repo id, or either layout "
                        "at an fsspec URL such as s3://bucket/models/WF-VAE-L-16Chn/ (read with --storage-options, "
                        "fetched once per node into $WFVAE_CACHE) (default: the bundled demo model)")
    add("--num-frames", type=int, help="frames per clip: 1 + a multiple of the temporal compression (default 17)")
    add("--fps", type=float, help="resample clips to this frame rate by timestamps (default: source rate)")
    add("--clips", help=f"clip policy: {CLIP_POLICIES} (default first)")
    add("--max-frames", type=int, help="with --clips whole: longest clip taken from a video")
    add("--short-videos", choices=SHORT_VIDEOS, help="a video shorter than one clip: skip (default) or shorten")
    add("--resolution", help="output size HxW (e.g. 256x448) or N for NxN: resize the short side, centre-crop "
                             "(default 256)")
    add("--buckets", help="aspect-ratio buckets, comma-separated HxW sizes; each video goes to the nearest aspect")
    add("--caption-key", help="caption source: a sample file extension (txt) or json:FIELD (default txt)")
    add("--video-extensions", help="comma-separated video file extensions (default mp4,mkv,webm,mov,avi)")
    add("--decoder", choices=DECODERS, help="video decoder (default pyav)")
    add("--chunk-frames", type=int, help="encode long clips through the Causal Cache in chunks of this many "
                                         "frames (default: whole clip; 8x the temporal compression with --clips whole)")
    add("--batch-size", type=int, help="clips of the same shape encoded together (default 4)")
    add("--dtype", choices=COMPUTE_DTYPES, help="compute precision (default auto: bfloat16 on GPU, float32 on CPU)")
    add("--latent-dtype", choices=LATENT_DTYPES, help="stored latent precision (default bfloat16)")
    add("--store", choices=STORE, help="store the posterior mean, or mean and logvar (default mean)")
    add("--num-actors", type=int, help="encoder actors (default: one per GPU, or 1 without GPUs)")
    add("--gpus-per-actor", type=float, help="GPUs per encoder actor, fractions allowed; 0 runs on CPU "
                                            "(default 1 with GPUs, else 0)")
    add("--decode-workers", type=int, help="decode tasks running ahead of each encoder actor, besides one batch "
                                           "of decoded clips waiting (default: from free CPUs)")
    add("--max-shard-attempts", type=int, help="give up on a shard after this many failed attempts (default 3)")
    add("--storage-options", help="fsspec storage options as JSON, for input and output "
                                  "(e.g. '{\"client_kwargs\": {\"endpoint_url\": \"http://host:9000\"}}')")
    add("--model-storage-options", help="fsspec storage options as JSON for --model alone, when the model "
                                        "lives elsewhere than the data (default: --storage-options)")
    add("--overwrite", action="store_true", default=None,
        help="delete whatever the output folder holds and start over (needed to reuse a folder "
             "written with different settings); never while another job holds it")
    add("--wait", action="store_true", default=None,
        help="if another job holds the output, wait for it to finish instead of exiting")
    add("--lease-seconds", type=float, help="a job's hold on its output lapses this long after its last "
                                            "heartbeat, e.g. when the job was killed (default 60)")
    add("--grace-seconds", type=float, help="on SIGTERM/SIGINT, time running shards get to commit before they "
                                            "are abandoned (default 20)")
    add("--shared-output", action="store_true", default=None,
        help="a local --output path is shared storage mounted on every node (needed on multi-node clusters)")
    add("--ray-address", help="Ray cluster to join (default: the running cluster, else a local one)")
    add("--progress-seconds", type=float, help="seconds between progress lines (default 10)")
    add("--dry-run", action="store_true", help="list shards (committed, pending, given up), probe the first "
                                                "sample of a few pending shards and estimate what the run would "
                                                "write, without starting Ray or encoding anything")
    add("--check-every", type=int, help="quality canary: decode every Nth clip (the first of each shard "
                                        "included) on the encoder's device; PSNR against the source goes "
                                        "into the commit records and the summary (default: off)")
    return parser


def config_from_args(argv: list[str] | None = None) -> JobConfig:
    args = build_parser().parse_args(argv)
    values: dict[str, Any] = {}
    if args.config is not None:
        values.update(load_yaml(args.config))
    values.update({k: v for k, v in vars(args).items() if v is not None and k not in ("config", "dry_run")})
    if "buckets" in values and "resolution" not in values:
        values["resolution"] = None
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
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def make_config(values: dict[str, Any]) -> JobConfig:
    known = {f.name for f in dataclasses.fields(JobConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown settings {unknown}; known: {sorted(known)}")
    converted = {k: (_CONVERTERS[k](v) if k in _CONVERTERS else v) for k, v in values.items()}
    try:
        return JobConfig(**converted)
    except TypeError as err:
        raise ConfigError(str(err)) from None
