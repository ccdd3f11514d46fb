"""The tensor precisions the project knows, by the names used in flags, records and file metadata.

One table, so that a precision the job may write is one the output schema and the training reader
can read back.
"""

from __future__ import annotations

import torch

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Stored latents: any of them. Compute: any of them, or "auto" (resolved where the devices are known).
LATENT_DTYPES = DTYPES
COMPUTE_DTYPES = DTYPES
COMPUTE_DTYPE_CHOICES = ("auto", *DTYPES)
