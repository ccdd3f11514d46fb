"""WF-VAE architecture configuration, in the released `config.json` vocabulary.

Field names (including the upstream spelling ``l1_dowmsample_block``) match the
reference implementation so released configs load unchanged and round-trip.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Valid (block, wavelet) pairings per level. The level-1 pair decides the temporal
# compression: a 2D level keeps time (4x overall), a 3D level halves it (8x).
_ENCODER_L1 = {
    ("Downsample", "HaarWaveletTransform2D"): 4,
    ("Spatial2xTime2x3DDownsample", "HaarWaveletTransform3D"): 8,
}
_DECODER_L1 = {
    ("Upsample", "InverseHaarWaveletTransform2D"): 4,
    ("Spatial2xTime2x3DUpsample", "InverseHaarWaveletTransform3D"): 8,
}
_ENCODER_L2 = ("Spatial2xTime2x3DDownsample", "HaarWaveletTransform3D")
_DECODER_L2 = ("Spatial2xTime2x3DUpsample", "InverseHaarWaveletTransform3D")

NORM_TYPES = ("layernorm", "groupnorm")
T_INTERPOLATIONS = ("trilinear", "nearest")
ATTENTION_TYPES = ("AttnBlock3DFix",)


@dataclass(frozen=True)
class WFVAEConfig:
    latent_dim: int = 8
    base_channels: int = 128
    encoder_num_resblocks: int = 2
    encoder_energy_flow_hidden_size: int = 64
    decoder_num_resblocks: int = 2
    decoder_energy_flow_hidden_size: int = 128
    attention_type: str = "AttnBlock3DFix"
    use_attention: bool = True
    dropout: float = 0.0
    norm_type: str = "groupnorm"
    t_interpolation: str = "nearest"
    connect_res_layer_num: int = 1
    scale: tuple[float, ...] = (0.18215, 0.18215, 0.18215, 0.18215)
    shift: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)
    l1_dowmsample_block: str = "Downsample"
    l1_downsample_wavelet: str = "HaarWaveletTransform2D"
    l2_dowmsample_block: str = "Spatial2xTime2x3DDownsample"
    l2_downsample_wavelet: str = "HaarWaveletTransform3D"
    l1_upsample_block: str = "Upsample"
    l1_upsample_wavelet: str = "InverseHaarWaveletTransform2D"
    l2_upsample_block: str = "Spatial2xTime2x3DUpsample"
    l2_upsample_wavelet: str = "InverseHaarWaveletTransform3D"
    # Not part of the architecture: where the config came from, for error messages.
    source: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("scale", "shift"):
            object.__setattr__(self, name, _floats(getattr(self, name), name, self.source))
        self._validate()

    # -- derived facts -------------------------------------------------------------
    @property
    def temporal_compression(self) -> int:
        return _ENCODER_L1[(self.l1_dowmsample_block, self.l1_downsample_wavelet)]

    @property
    def spatial_compression(self) -> int:
        return 8

    @property
    def chunkable(self) -> bool:
        """GroupNorm statistics span time, so only LayerNorm models encode exactly in chunks."""
        return self.norm_type == "layernorm"

    def latent_scale_shift(self) -> tuple[list[float], list[float]]:
        """Per-channel (scale, shift) for ``(z - shift) * scale`` normalisation.

        Releases sometimes carry placeholder lists of the wrong length (WF-VAE-L-16Chn ships
        4 entries for 16 channels); a list of one repeated value is broadcast, anything else
        of the wrong length is an error.
        """
        return (_per_channel(self.scale, self.latent_dim, "scale", self.source),
                _per_channel(self.shift, self.latent_dim, "shift", self.source))

    # -- (de)serialisation ---------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | None = None) -> "WFVAEConfig":
        known = {f.name for f in dataclasses.fields(cls)} - {"source"}
        unknown = sorted(k for k in data if k not in known and not k.startswith("_"))
        if unknown:
            warnings.warn(f"{source or 'WF-VAE config'}: ignoring unknown keys {unknown}", stacklevel=2)
        kwargs = {k: v for k, v in data.items() if k in known}
        try:
            return cls(**kwargs, source=source)
        except TypeError as err:  # wrong value types
            raise ValueError(f"{source or 'WF-VAE config'}: {err}") from None

    @classmethod
    def from_json(cls, path: str | Path) -> "WFVAEConfig":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no config.json (a WF-VAE folder needs config.json next to the weights)") from None
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object of WF-VAE config fields")
        return cls.from_dict(data, source=str(path))

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("source")
        data["scale"], data["shift"] = list(self.scale), list(self.shift)
        data["_class_name"] = "WFVAEModel"
        return data

    # -- validation ----------------------------------------------------------------
    def _validate(self) -> None:
        where = self.source or "WF-VAE config"

        def fail(msg: str) -> None:
            raise ValueError(f"{where}: {msg}")

        for name in ("latent_dim", "base_channels", "encoder_energy_flow_hidden_size",
                     "decoder_energy_flow_hidden_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                fail(f"{name} must be a positive integer, got {value!r}")
        for name in ("encoder_num_resblocks", "decoder_num_resblocks", "connect_res_layer_num"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                fail(f"{name} must be a non-negative integer, got {value!r}")
        if self.norm_type not in NORM_TYPES:
            fail(f"norm_type must be one of {NORM_TYPES}, got {self.norm_type!r}")
        if self.norm_type == "groupnorm":
            for name in ("base_channels", "encoder_energy_flow_hidden_size", "decoder_energy_flow_hidden_size"):
                if getattr(self, name) % 32:
                    fail(f"groupnorm uses 32 groups, so {name} must be a multiple of 32, got {getattr(self, name)}")
        if self.t_interpolation not in T_INTERPOLATIONS:
            fail(f"t_interpolation must be one of {T_INTERPOLATIONS}, got {self.t_interpolation!r}")
        if self.attention_type not in ATTENTION_TYPES:
            fail(f"attention_type must be one of {ATTENTION_TYPES}, got {self.attention_type!r}")
        enc_l1 = (self.l1_dowmsample_block, self.l1_downsample_wavelet)
        dec_l1 = (self.l1_upsample_block, self.l1_upsample_wavelet)
        if enc_l1 not in _ENCODER_L1:
            fail(f"(l1_dowmsample_block, l1_downsample_wavelet) must be one of {sorted(_ENCODER_L1)}, got {enc_l1}")
        if dec_l1 not in _DECODER_L1:
            fail(f"(l1_upsample_block, l1_upsample_wavelet) must be one of {sorted(_DECODER_L1)}, got {dec_l1}")
        if _ENCODER_L1[enc_l1] != _DECODER_L1[dec_l1]:
            fail(f"encoder level 1 {enc_l1} compresses time {_ENCODER_L1[enc_l1]}x but decoder level 1 "
                 f"{dec_l1} expands it {_DECODER_L1[dec_l1]}x")
        if (self.l2_dowmsample_block, self.l2_downsample_wavelet) != _ENCODER_L2:
            fail(f"level 2 of the encoder must be {_ENCODER_L2}")
        if (self.l2_upsample_block, self.l2_upsample_wavelet) != _DECODER_L2:
            fail(f"level 2 of the decoder must be {_DECODER_L2}")
        if not self.scale or not self.shift:
            fail("scale and shift must be non-empty lists")


def _floats(value: Any, name: str, source: str | None) -> tuple[float, ...]:
    """A list of numbers, or one number for every channel (some configs give a scalar ``scale``)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (float(value),)
    try:
        if isinstance(value, str):
            raise TypeError
        return tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{source or 'WF-VAE config'}: {name} must be a number or a list of numbers (one per "
                         f"latent channel), got {value!r}") from None


def _per_channel(values: tuple[float, ...], channels: int, name: str, source: str | None) -> list[float]:
    if len(values) == channels:
        return list(values)
    if len(set(values)) == 1:
        return [values[0]] * channels
    raise ValueError(f"{source or 'WF-VAE config'}: {name} has {len(values)} entries for {channels} latent "
                     f"channels; give one value per channel (or one repeated value)")
