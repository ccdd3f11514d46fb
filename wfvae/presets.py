"""Architectures of the released WF-VAE checkpoints.

A preset builds the exact module layout of a release (so its weights load strictly)
without downloading anything: useful for benchmarks, random-weight tests and for
checking a checkpoint against what it claims to be.
"""

from __future__ import annotations

from .config import WFVAEConfig

_COMMON = dict(
    attention_type="AttnBlock3DFix",
    use_attention=True,
    dropout=0.0,
    encoder_num_resblocks=2,
    decoder_num_resblocks=2,
    norm_type="layernorm",
    t_interpolation="trilinear",
    l2_dowmsample_block="Spatial2xTime2x3DDownsample",
    l2_downsample_wavelet="HaarWaveletTransform3D",
    l2_upsample_block="Spatial2xTime2x3DUpsample",
    l2_upsample_wavelet="InverseHaarWaveletTransform3D",
)
_TEMPORAL_4X = dict(
    l1_dowmsample_block="Downsample",
    l1_downsample_wavelet="HaarWaveletTransform2D",
    l1_upsample_block="Upsample",
    l1_upsample_wavelet="InverseHaarWaveletTransform2D",
)
_TEMPORAL_8X = dict(
    l1_dowmsample_block="Spatial2xTime2x3DDownsample",
    l1_downsample_wavelet="HaarWaveletTransform3D",
    l1_upsample_block="Spatial2xTime2x3DUpsample",
    l1_upsample_wavelet="InverseHaarWaveletTransform3D",
)

# Open-Sora-Plan v1.5 normalises its 32-channel latents as (z - shift) * scale with these
# per-channel statistics (from its released model config).
_OSP15_SCALE = (
    0.7031, 0.7109, 1.5391, 1.2969, 0.7109, 1.4141, 1.3828, 2.1719, 1.7266, 1.8281, 1.9141,
    1.2031, 0.6875, 0.9609, 1.6484, 1.1875, 1.5312, 1.1328, 0.8828, 0.6836, 0.8828, 0.9219,
    1.6953, 1.4453, 1.5312, 0.6836, 0.7656, 0.8242, 1.2344, 1.0312, 1.7266, 0.9492,
)
_OSP15_SHIFT = (
    -0.2129, 0.1226, 1.6328, 0.6211, -0.8750, 0.6172, -0.5703, 0.1348, -0.2178, -0.9375, 0.3184,
    0.3281, -0.0544, -0.1826, -0.2812, 0.4355, 0.1621, -0.2578, 0.7148, -0.7422, -0.2295, -0.2324,
    -1.4922, 0.6328, 1.1250, -0.2578, -2.1094, 1.0391, 1.1797, -1.2422, -0.2988, -0.9570,
)

PRESETS: dict[str, WFVAEConfig] = {
    # chestnutlzj/WF-VAE-L-16Chn: 4x temporal, 16 channels, 317M parameters. Its release carries
    # placeholder scale/shift (0.18215 / 0): normalise with measured statistics instead.
    "WF-VAE-L-16Chn": WFVAEConfig(
        **_COMMON, **_TEMPORAL_4X, latent_dim=16, base_channels=192,
        encoder_energy_flow_hidden_size=128, decoder_energy_flow_hidden_size=128,
        connect_res_layer_num=1, scale=(0.18215,) * 16, shift=(0.0,) * 16, source="preset WF-VAE-L-16Chn",
    ),
    # Open-Sora-Plan v1.3's VAE: 4x temporal, 8 channels.
    "WF-VAE-S-8Chn": WFVAEConfig(
        **_COMMON, **_TEMPORAL_4X, latent_dim=8, base_channels=128,
        encoder_energy_flow_hidden_size=64, decoder_energy_flow_hidden_size=128,
        connect_res_layer_num=2, scale=(0.18215,) * 8, shift=(0.0,) * 8, source="preset WF-VAE-S-8Chn",
    ),
    # Open-Sora-Plan v1.5's VAE: 8x temporal, 8x8 spatial, 32 channels.
    "WF-VAE-M-888-32Chn": WFVAEConfig(
        **_COMMON, **_TEMPORAL_8X, latent_dim=32, base_channels=160,
        encoder_energy_flow_hidden_size=128, decoder_energy_flow_hidden_size=128,
        connect_res_layer_num=1, scale=_OSP15_SCALE, shift=_OSP15_SHIFT, source="preset WF-VAE-M-888-32Chn",
    ),
}


def preset(name: str) -> WFVAEConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown WF-VAE preset {name!r}; known presets: {sorted(PRESETS)}") from None
