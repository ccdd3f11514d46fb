"""The Causal Cache: what earlier chunks of a clip leave behind for the next chunk.

WF-VAE is causal in time, so a long clip can be run through the network a chunk at a
time if every layer that looks across frames remembers the frames it still needs:
a causal convolution keeps the tail of its input window, the decoder's temporal
interpolation holds back the frame whose successor it has not seen yet, and a join
of two branches keeps whichever side ran ahead. That memory lives here, in a value
the caller creates per clip and passes down explicitly; layers are stateless.

A fresh cache means "this call starts the clip". ``closing=True`` marks the call that
carries the clip's last frames, so look-ahead layers emit what they held back. A single
call on a fresh, closing cache is an ordinary whole-clip forward pass.
"""

from __future__ import annotations

from typing import Any

import torch


class CausalCache:
    def __init__(self, closing: bool = False) -> None:
        self.closing = closing
        self._state: dict[int, Any] = {}

    @classmethod
    def whole_clip(cls) -> "CausalCache":
        return cls(closing=True)

    def starts_clip(self, layer: torch.nn.Module) -> bool:
        """True while ``layer`` has not yet seen any chunk of this clip."""
        return id(layer) not in self._state

    def load(self, layer: torch.nn.Module, default: Any = None) -> Any:
        return self._state.get(id(layer), default)

    def store(self, layer: torch.nn.Module, value: Any) -> None:
        """Keep ``value`` for ``layer``'s next chunk. Tensors should not be views of large
        buffers (clone slices), or the buffer they came from stays alive."""
        self._state[id(layer)] = value

    def nbytes(self) -> int:
        """Memory held by the cache: stays constant as a clip grows."""
        total = 0
        for value in self._state.values():
            for item in value if isinstance(value, (tuple, list)) else (value,):
                if isinstance(item, torch.Tensor):
                    total += item.numel() * item.element_size()
        return total
