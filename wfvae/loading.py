"""Loading released WF-VAE weights, strictly.

Accepted sources:
  1. a folder with ``config.json`` + ``diffusion_pytorch_model.safetensors`` (the Hugging Face release);
  2. a training checkpoint ``*.ckpt`` (the file, or a folder holding one) next to ``config.json``:
     ``ema_state_dict`` is preferred (``module.`` stripped), else ``state_dict["gen_model"]``,
     else ``state_dict``;
  3. a Hugging Face repo id, fetched (or found in the local cache) through huggingface_hub;
  4. any fsspec URL of 1. or 2. (``s3://bucket/models/WF-VAE-L-16Chn/``, with ``storage_options``),
     fetched once per machine into a cache named by content checksum (see ``remote.py``).
A checkpoint that does not match the config key for key and shape for shape is refused:
a partially loaded VAE produces plausible-looking but wrong latents.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import WFVAEConfig
from .remote import WEIGHT_SUFFIXES, fetch_model, is_remote, local_path, open_remote_weights, read_remote_config

if TYPE_CHECKING:  # torch is imported where weights load: reading a config (read_config) needs none
    import torch

    from .model import WFVAE

SAFETENSORS_NAMES = ("diffusion_pytorch_model.safetensors", "model.safetensors")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_LISTED = 8  # keys shown per category in an error message


class CheckpointError(ValueError):
    """A weights file that cannot be loaded into the configured model; says which and why."""


def load_pretrained(cls: type["WFVAE"], source: str | Path, *, device: str | torch.device = "cpu",
                    dtype: torch.dtype | None = None, allow_pickle: bool = False,
                    storage_options: dict[str, Any] | None = None, cache_dir: str | Path | None = None) -> "WFVAE":
    """``dtype`` None: float32."""
    if not is_remote(source):
        config_path, weights_path = resolve_source(source)
        return _load(cls, config_path, weights_path, device, dtype, allow_pickle)
    fetched = fetch_model(str(source), storage_options, cache_dir)
    try:
        return _load(cls, fetched.config, fetched.weights, device, dtype, allow_pickle)
    except (CheckpointError, ValueError) as err:  # name what the user gave, not only the cache's copy
        raise type(err)(f"{err} (fetched from {fetched.url})") from None


def _load(cls: type["WFVAE"], config_path: Path, weights_path: Path, device: str | torch.device,
          dtype: torch.dtype | None, allow_pickle: bool) -> "WFVAE":
    import torch

    config = WFVAEConfig.from_json(config_path)
    state_dict = read_state_dict(weights_path, allow_pickle=allow_pickle)
    with torch.device("meta"):
        model = cls(config)
    check_state_dict(model, state_dict, weights_path)
    try:
        model.load_state_dict(state_dict, strict=True, assign=True)
    except RuntimeError as err:
        raise CheckpointError(f"{weights_path}: {err}") from None
    model.to(device=device, dtype=torch.float32 if dtype is None else dtype)
    return model.eval()


def read_config(source: str | Path, storage_options: dict[str, Any] | None = None) -> WFVAEConfig:
    """A model's config alone, without fetching remote weights: for checks before loading."""
    if is_remote(source):
        url, payload = read_remote_config(str(source), storage_options)
        try:
            data = json.loads(payload)
        except json.JSONDecodeError as err:
            raise ValueError(f"{url}: not valid JSON ({err})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{url}: expected a JSON object of WF-VAE config fields")
        return WFVAEConfig.from_dict(data, source=url)
    if _is_repo_id(source) and not Path(source).expanduser().exists():  # config.json only, not the weights
        return WFVAEConfig.from_json(_download_from_hub(str(source), ["config.json"]) / "config.json")
    return WFVAEConfig.from_json(resolve_source(source)[0])


def check_weights(source: str | Path, storage_options: dict[str, Any] | None = None) -> None:
    """The weights a load would read, checked where they are without loading them (no torch): that they exist
    and are weights, and their header: a safetensors file's tensor table (which must fit in the file, so a cut
    download is found) or a checkpoint's archive signature. A Hugging Face repo id is checked when fetched.
    Raises FileNotFoundError or CheckpointError (a ValueError) saying what is wrong."""
    if is_remote(source):
        url, size, file = open_remote_weights(str(source), storage_options)
        with file:
            _check_header(url, size, file)
        return
    if _is_repo_id(source) and not Path(source).expanduser().exists():
        return
    _, weights = resolve_source(source)
    if not weights.name.endswith(WEIGHT_SUFFIXES):
        raise CheckpointError(f"{source}: not a weights file (*.safetensors or *.ckpt); pass the model's folder, "
                              "which holds config.json and its weights")
    with weights.open("rb") as file:
        _check_header(str(weights), weights.stat().st_size, file)


def _check_header(name: str, size: int, file: Any) -> None:
    head = file.read(8)
    if name.endswith(".ckpt"):
        if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):  # a zip archive, or a legacy pickle
            raise CheckpointError(f"{name}: not a PyTorch checkpoint (neither a zip archive nor a pickle)")
        return
    length = int.from_bytes(head, "little") if len(head) == 8 else 0
    if not 2 <= length <= min(size - 8, 100 * 2**20):
        raise CheckpointError(f"{name}: not a safetensors file (its header length reads {length}, the file has "
                              f"{size} bytes)")
    try:
        table = json.loads(file.read(length))
        ends = [int(entry["data_offsets"][1]) for key, entry in table.items() if key != "__metadata__"]
    except (ValueError, KeyError, TypeError, IndexError) as err:
        raise CheckpointError(f"{name}: not a safetensors file (its header does not parse: {err})") from None
    if not ends:
        raise CheckpointError(f"{name}: a safetensors file with no tensors")
    if 8 + length + max(ends) > size:
        raise CheckpointError(f"{name}: cut short ({size} bytes, its header describes {8 + length + max(ends)}); "
                              "download it again")


def _is_repo_id(source: str | Path) -> bool:
    return isinstance(source, str) and bool(_REPO_ID.match(source)) and not source.startswith((".", "/"))


def resolve_source(source: str | Path) -> tuple[Path, Path]:
    """(config.json, weights file) for a local folder, a weights file or a Hugging Face repo id."""
    path = Path(local_path(source) if isinstance(source, str) else source).expanduser()
    if not path.exists():
        if _is_repo_id(source):
            path = _download_from_hub(str(source))
        else:
            raise FileNotFoundError(f"{source}: no such file or folder (expected a WF-VAE folder with config.json "
                                    "and diffusion_pytorch_model.safetensors, a *.ckpt next to config.json, a "
                                    "Hugging Face repo id like 'chestnutlzj/WF-VAE-L-16Chn', or an fsspec URL "
                                    "of a folder or file like 's3://bucket/models/WF-VAE-L-16Chn/')")
    if path.is_file():
        return path.parent / "config.json", path
    return path / "config.json", _find_weights(path)


def _find_weights(folder: Path) -> Path:
    for name in SAFETENSORS_NAMES:
        if (folder / name).is_file():
            return folder / name
    ckpts = sorted(folder.glob("*.ckpt"))
    if len(ckpts) == 1:
        return ckpts[0]
    if len(ckpts) > 1:
        raise FileNotFoundError(f"{folder}: several checkpoints ({', '.join(p.name for p in ckpts)}); "
                                "pass the one to load as a file path")
    raise FileNotFoundError(f"{folder}: no weights found (looked for {', '.join(SAFETENSORS_NAMES)} and *.ckpt)")


def _download_from_hub(repo_id: str, patterns: list[str] | None = None) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - a declared dependency
        raise FileNotFoundError(f"{repo_id}: not a local path, and huggingface_hub is not installed") from None
    try:
        folder = snapshot_download(repo_id, allow_patterns=patterns or ["config.json", "*.safetensors"])
    except Exception as err:  # offline, unknown repo, no access: all end the same way for the user
        raise FileNotFoundError(
            f"{repo_id}: not a local path, and it could not be fetched from the Hugging Face Hub "
            f"({type(err).__name__}: {err}). If this machine is offline, download the release elsewhere and "
            "pass its folder (config.json + diffusion_pytorch_model.safetensors), or pre-fill the Hub cache "
            "(HF_HOME) and set HF_HUB_OFFLINE=1.") from None
    return Path(folder)


def read_state_dict(path: Path, *, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights file not found")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as err:
            raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from None
    return _training_state_dict(path, allow_pickle)


def _training_state_dict(path: Path, allow_pickle: bool) -> dict[str, torch.Tensor]:
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=not allow_pickle, mmap=True)
    except Exception as err:
        if "weights_only" in str(err) and not allow_pickle:
            raise CheckpointError(f"{path}: holds Python objects besides tensors, which are not loaded unless "
                                  "you trust the file (WFVAE.from_pretrained(..., allow_pickle=True))") from None
        try:  # not a zip checkpoint: legacy format cannot be memory-mapped
            checkpoint = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
        except Exception as err2:
            raise CheckpointError(f"{path}: not a PyTorch checkpoint ({type(err2).__name__}: {err2})") from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, found {type(checkpoint).__name__}")
    ema = checkpoint.get("ema_state_dict")
    if isinstance(ema, dict) and ema:
        chosen, what = ema, "ema_state_dict"
    elif isinstance(checkpoint.get("state_dict"), dict):
        inner = checkpoint["state_dict"]
        chosen, what = (inner["gen_model"], "state_dict.gen_model") if isinstance(inner.get("gen_model"), dict) \
            else (inner, "state_dict")
    elif checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        chosen, what = checkpoint, "the top-level dict"
    else:
        raise CheckpointError(f"{path}: no weights found: expected 'ema_state_dict', 'state_dict' or a plain state "
                              f"dict, found keys {sorted(map(str, checkpoint))[:_LISTED]}")
    tensors = {_strip_module(k): v for k, v in chosen.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path}: {what} holds no tensors")
    return tensors


def _strip_module(key: str) -> str:
    return key[len("module."):] if key.startswith("module.") else key


def check_state_dict(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], path: Path) -> None:
    """Raise CheckpointError listing missing, unexpected and wrongly shaped keys."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    optional = {k for k in expected if "wavelet_transform" in k}  # fixed filters, built in code
    missing = sorted(k for k in expected if k not in state_dict and k not in optional)
    unexpected = sorted(k for k in state_dict if k not in expected)
    wrong_shape = sorted(f"{k}: file {tuple(state_dict[k].shape)}, model {expected[k]}"
                         for k in expected if k in state_dict and tuple(state_dict[k].shape) != expected[k])
    problems = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", wrong_shape)):
        if items:
            more = f" ... and {len(items) - _LISTED} more" if len(items) > _LISTED else ""
            problems.append(f"{len(items)} {label}: {', '.join(items[:_LISTED])}{more}")
    if problems:
        raise CheckpointError(f"{path} does not match its config.json ({model.config.latent_dim} latent channels, "
                              f"base_channels {model.config.base_channels}, {model.temporal_compression}x "
                              f"temporal): " + "; ".join(problems))
