"""The tensor precisions the project knows, by the names used in flags, records and file metadata.

One table, so that a precision the job may write is one the output schema and the training reader
can read back. Its names (and sizes) are known without torch; a value (a ``torch.dtype``) imports
torch when first looked up, so that the job's driver and its decode workers, which only name
precisions, start without importing torch.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

NAMES = ("float32", "float16", "bfloat16")
ITEMSIZES = {name: int(name.rpartition("float")[2]) // 8 for name in NAMES}  # bytes per value: bits in the name


class _Dtypes(Mapping[str, "torch.dtype"]):
    """``{"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}``, torch imported
    on the first lookup of a value."""

    def __getitem__(self, name: str) -> torch.dtype:
        if name not in NAMES:
            raise KeyError(name)
        import torch

        return getattr(torch, name)

    def __contains__(self, name: object) -> bool:
        return name in NAMES

    def __iter__(self) -> Iterator[str]:
        return iter(NAMES)

    def __len__(self) -> int:
        return len(NAMES)

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{name!r}: torch.{name}" for name in NAMES) + "}"


DTYPES: Mapping[str, torch.dtype] = _Dtypes()
# Stored latents: any of them. Compute: any of them, or "auto" (resolved where the devices are known).
LATENT_DTYPES = DTYPES
COMPUTE_DTYPES = DTYPES
COMPUTE_DTYPE_CHOICES = ("auto", *DTYPES)


def resolve_dtype(name: str, on_gpu: bool) -> str:
    """``auto`` is bfloat16 on GPUs and float32 on CPU (for WF-VAE, whose latents stay within 1e-2 in
    bfloat16, and for T5-family text encoders, trained in bfloat16 and out of float16's range); a name stays."""
    return ("bfloat16" if on_gpu else "float32") if name == "auto" else name
