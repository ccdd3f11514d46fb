"""Writing a model in the released layout: ``config.json`` + ``diffusion_pytorch_model.safetensors``,
the folder ``WFVAE.from_pretrained`` (and the reference implementation) read.

Every tensor of the state dict is written, the fixed Haar filters included, as the released
checkpoints carry them. Each file is written beside its destination and renamed into place, so
an interrupted save never leaves a half-written model that a later load would refuse, or worse,
half-accept.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .model import WFVAE

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
CONFIG_NAME = "config.json"


def save_pretrained(model: "WFVAE", folder: str | Path, *, metadata: dict[str, str] | None = None,
                    dtype: torch.dtype | None = None) -> Path:
    """Write ``folder/config.json`` and ``folder/diffusion_pytorch_model.safetensors``; returns the
    folder. ``dtype`` converts floating-point weights (e.g. torch.bfloat16 to halve the file);
    ``metadata`` adds string key-values to the safetensors header."""
    from safetensors.torch import save_file

    if metadata is not None and not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise ValueError(f"safetensors metadata must map strings to strings, got {metadata!r}")
    folder = Path(folder).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().to("cpu")
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        tensors[name] = tensor.contiguous().clone()  # no shared storage: safetensors refuses it
    config = (json.dumps(model.config.to_dict(), indent=2) + "\n").encode()
    _replace(folder / WEIGHTS_NAME, lambda path: save_file(tensors, str(path), metadata={"format": "pt",
                                                                                          **(metadata or {})}))
    _replace(folder / CONFIG_NAME, lambda path: path.write_bytes(config))
    return folder


def _replace(destination: Path, write) -> None:
    temporary = destination.with_name(f".{destination.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        write(temporary)
        os.replace(temporary, destination)
    finally:
        if temporary.exists():
            temporary.unlink()
