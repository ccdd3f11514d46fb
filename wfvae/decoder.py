"""WF-VAE decoder: mirrors the encoder, rebuilding each wavelet level from the latent."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .cache import CausalCache
from .config import WFVAEConfig
from .layers.blocks import AlignStreams, CausalSequential, FrameAttention, ResnetBlock3D
from .layers.conv import CausalConv3d, FrameConv2d
from .layers.norm import make_norm
from .layers.resample import Spatial2xTime2x3DUpsample, Upsample
from .layers.wavelet import InverseHaarWavelet2D, InverseHaarWavelet3D

_UPSAMPLERS = {"Upsample": Upsample, "Spatial2xTime2x3DUpsample": Spatial2xTime2x3DUpsample}
_INVERSE_WAVELETS = {"InverseHaarWaveletTransform2D": InverseHaarWavelet2D,
                     "InverseHaarWaveletTransform3D": InverseHaarWavelet3D}


def _add_to_low_band(coeffs: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
    """Adds a reconstructed low band to the first 3 (low-frequency) channels of ``coeffs``."""
    return torch.cat([coeffs[:, :3] + low, coeffs[:, 3:]], dim=1)


class Decoder(nn.Module):
    """latents (B, latent_dim, t, h, w) -> video (B, 3, 1 + (t-1)*tc, 8h, 8w)."""

    def __init__(self, config: WFVAEConfig) -> None:
        super().__init__()
        base, flow, norm = config.base_channels, config.decoder_energy_flow_hidden_size, config.norm_type
        blocks, dropout, t_interp = config.decoder_num_resblocks, config.dropout, config.t_interpolation
        self.energy_flow_hidden_size = flow
        self.conv_in = CausalConv3d(config.latent_dim, 4 * base, kernel_size=3, padding=1)
        mid = [ResnetBlock3D(4 * base, 4 * base, norm, dropout),
               ResnetBlock3D(4 * base, 4 * base + flow, norm, dropout)]
        if config.use_attention:
            mid.insert(1, FrameAttention(4 * base, norm))
        self.mid = CausalSequential(*mid)
        self.up2 = CausalSequential(
            *[ResnetBlock3D(4 * base, 4 * base, norm, dropout) for _ in range(blocks)],
            Spatial2xTime2x3DUpsample(4 * base, 4 * base, t_interpolation=t_interp),
            ResnetBlock3D(4 * base, 4 * base + flow, norm, dropout),
        )
        self.up1 = CausalSequential(
            *[ResnetBlock3D(4 * base if i == 0 else 2 * base, 2 * base, norm, dropout) for i in range(blocks)],
            _UPSAMPLERS[config.l1_upsample_block](2 * base, 2 * base, t_interpolation=t_interp),
            ResnetBlock3D(2 * base, 2 * base, norm, dropout),
        )
        self.layer = CausalSequential(ResnetBlock3D(2 * base, base, norm, dropout),
                                      ResnetBlock3D(base, base, norm, dropout))
        l1_channels = 12 if config.l1_upsample_wavelet == "InverseHaarWaveletTransform2D" else 24
        self.connect_l1 = CausalSequential(
            *[ResnetBlock3D(flow, flow, norm, dropout) for _ in range(config.connect_res_layer_num)],
            FrameConv2d(flow, l1_channels, kernel_size=3, padding=1),
        )
        self.connect_l2 = CausalSequential(
            *[ResnetBlock3D(flow, flow, norm, dropout) for _ in range(config.connect_res_layer_num)],
            FrameConv2d(flow, 24, kernel_size=3, padding=1),
        )
        self.norm_out = make_norm(norm, base, per_frame=False)
        self.conv_out = FrameConv2d(base, 24, kernel_size=3, padding=1)
        self.inverse_wavelet_transform_out = InverseHaarWavelet3D()
        self.inverse_wavelet_transform_l1 = _INVERSE_WAVELETS[config.l1_upsample_wavelet]()
        self.inverse_wavelet_transform_l2 = InverseHaarWavelet3D()
        # Where a branch that went through look-ahead interpolation meets one that did not.
        self.align_l1 = AlignStreams()
        self.align_out = AlignStreams()

    def forward(self, z: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        flow = self.energy_flow_hidden_size
        h = self.mid(self.conv_in(z, cache), cache)
        l2 = self.inverse_wavelet_transform_l2(self.connect_l2(h[:, -flow:], cache), cache)
        h = self.up2(h[:, :-flow], cache)
        l1_coeffs, l2 = self.align_l1(self.connect_l1(h[:, -flow:], cache), l2, cache)
        l1 = self.inverse_wavelet_transform_l1(_add_to_low_band(l1_coeffs, l2), cache)
        h = self.layer(self.up1(h[:, :-flow], cache), cache)
        h = self.conv_out(F.silu(self.norm_out(h, cache)))
        h, l1 = self.align_out(h, l1, cache)
        return self.inverse_wavelet_transform_out(_add_to_low_band(h, l1), cache)
