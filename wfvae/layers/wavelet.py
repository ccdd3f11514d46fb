"""Haar wavelet transforms: WF-VAE's fixed, non-learned multi-level frequency split.

Each transform is one strided (transposed) convolution with a bank of separable Haar
filters applied to every channel, giving subbands ordered ``subband * C + channel`` as
in the reference. The filters are built in code; released checkpoints also store them
(under per-filter names), so they are exposed in the state dict under those names and,
when a checkpoint carries them, checked against the built-in values on load.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..cache import CausalCache
from .temporal import causal_windows, empty_frames

# The reference rounds 1/sqrt(8) to 0.3536; released weights were trained against it.
HAAR_3D_GAIN = 0.3536
HAAR_2D_GAIN = 0.5

_LOW, _HIGH = (1.0, 1.0), (1.0, -1.0)

# Released filter names and which axes (t, h, w) each one high-passes.
_NAMES_3D = ["h", "g", "hh", "gh", "h_v", "g_v", "hh_v", "gh_v"]
_HIGHPASS_3D = [(t, h, w) for t in (0, 1) for h in (0, 1) for w in (0, 1)]
_NAMES_2D = ["aa", "ad", "da", "dd"]
_HIGHPASS_2D = [(0, 0), (1, 0), (0, 1), (1, 1)]  # (h, w)


def _haar_3d() -> torch.Tensor:
    bank = [torch.einsum("i,j,k->ijk", *(torch.tensor(_HIGH if hp else _LOW, device="cpu") for hp in axes))
            for axes in _HIGHPASS_3D]
    return (torch.stack(bank) * HAAR_3D_GAIN).unsqueeze(1)  # (8, 1, 2, 2, 2)


def _haar_2d() -> torch.Tensor:
    bank = [torch.outer(*(torch.tensor(_HIGH if hp else _LOW, device="cpu") for hp in axes)) for axes in _HIGHPASS_2D]
    return (torch.stack(bank) * HAAR_2D_GAIN).view(4, 1, 1, 2, 2)  # (4, 1, t=1, 2, 2)


class _FixedFilterBank(nn.Module):
    """Holds non-trainable filters and maps them to the released checkpoints' key names."""

    tolerance = 1e-3  # bf16 copies of 0.3536 are within 1e-4; a wrong sign or filter is off by > 0.3

    def __init__(self, filters: torch.Tensor, key_names: list[str], key_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.register_buffer("filters", filters, persistent=False)
        self._key_names = key_names
        self._key_shape = key_shape

    def _save_to_state_dict(self, destination, prefix, keep_vars):  # noqa: D401 (torch hook)
        for index, name in enumerate(self._key_names):
            value = self.filters[index].reshape(self._key_shape)
            destination[prefix + name] = value if keep_vars else value.detach()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        expected = {prefix + name: index for index, name in enumerate(self._key_names)}
        for key, index in expected.items():
            if key not in state_dict:
                continue  # built in code; releases may omit them
            value = state_dict[key]
            if tuple(value.shape) != self._key_shape:
                error_msgs.append(f"{key}: shape {tuple(value.shape)}, expected {self._key_shape}")
                continue
            reference = self.filters[index].reshape(self._key_shape).float()
            if value.is_meta or not torch.allclose(value.float().cpu(), reference.cpu(), atol=self.tolerance):
                error_msgs.append(f"{key}: holds {value.flatten().tolist()}, which is not the fixed Haar "
                                  f"filter {reference.flatten().tolist()}")
        if strict:
            unexpected_keys.extend(k for k in state_dict if k.startswith(prefix) and k not in expected)


def _subbands_to_channels(y: torch.Tensor, batch: int) -> torch.Tensor:
    """(B*C, K, T, H, W) -> (B, K*C, T, H, W), subband-major like the reference."""
    bc, k = y.shape[:2]
    y = y.view(batch, bc // batch, k, *y.shape[2:]).transpose(1, 2)
    return y.reshape(batch, k * (bc // batch), *y.shape[3:])


def _channels_to_subbands(x: torch.Tensor, k: int) -> torch.Tensor:
    """(B, K*C, T, H, W) -> (B*C, K, T, H, W)."""
    b, kc = x.shape[:2]
    x = x.view(b, k, kc // k, *x.shape[2:]).transpose(1, 2)
    return x.reshape(b * (kc // k), k, *x.shape[3:])


class HaarWavelet3D(_FixedFilterBank):
    """3D Haar analysis: (B, C, T, H, W) -> (B, 8C, 1 + (T-1)/2, H/2, W/2), causal in time."""

    def __init__(self) -> None:
        super().__init__(_haar_3d(), [f"{n}_conv.conv.weight" for n in _NAMES_3D], (1, 1, 2, 2, 2))

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        b = x.shape[0]
        frames = causal_windows(self, x.reshape(-1, 1, *x.shape[2:]), cache, kernel=2, stride=2)
        if frames.shape[2] == 0:
            return empty_frames(x, 8 * x.shape[1], x.shape[3] // 2, x.shape[4] // 2)
        return _subbands_to_channels(F.conv3d(frames, self.filters, stride=2), b)


class HaarWavelet2D(_FixedFilterBank):
    """Per-frame 2D Haar analysis: (B, C, T, H, W) -> (B, 4C, T, H/2, W/2)."""

    def __init__(self) -> None:
        super().__init__(_haar_2d(), list(_NAMES_2D), (1, 1, 2, 2))

    def forward(self, x: torch.Tensor, cache: CausalCache | None = None) -> torch.Tensor:
        if x.shape[2] == 0:
            return empty_frames(x, 4 * x.shape[1], x.shape[3] // 2, x.shape[4] // 2)
        y = F.conv3d(x.reshape(-1, 1, *x.shape[2:]), self.filters, stride=(1, 2, 2))
        return _subbands_to_channels(y, x.shape[0])


class InverseHaarWavelet3D(_FixedFilterBank):
    """3D Haar synthesis: (B, 8C, t, h, w) -> (B, C, 2t - 1, 2h, 2w).

    Each coefficient frame expands to two video frames; the clip's very first output frame
    is the mirror of causal padding and is dropped, once per clip.
    """

    def __init__(self) -> None:
        super().__init__(_haar_3d(), list(_NAMES_3D), (1, 1, 2, 2, 2))

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        b, c = x.shape[0], x.shape[1] // 8
        if x.shape[2] == 0:
            return empty_frames(x, c, 2 * x.shape[3], 2 * x.shape[4])
        y = F.conv_transpose3d(_channels_to_subbands(x, 8), self.filters, stride=2)
        y = y.view(b, c, *y.shape[2:])
        if cache.starts_clip(self):
            y = y[:, :, 1:]
            if not cache.closing:
                cache.store(self, True)
        return y


class InverseHaarWavelet2D(_FixedFilterBank):
    """Per-frame 2D Haar synthesis: (B, 4C, T, h, w) -> (B, C, T, 2h, 2w)."""

    def __init__(self) -> None:
        super().__init__(_haar_2d(), list(_NAMES_2D), (1, 1, 2, 2))

    def forward(self, x: torch.Tensor, cache: CausalCache | None = None) -> torch.Tensor:
        b, c = x.shape[0], x.shape[1] // 4
        if x.shape[2] == 0:
            return empty_frames(x, c, 2 * x.shape[3], 2 * x.shape[4])
        y = F.conv_transpose3d(_channels_to_subbands(x, 4), self.filters, stride=(1, 2, 2))
        return y.view(b, c, *y.shape[2:])
