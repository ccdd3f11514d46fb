"""WF-VAE encoder: a wavelet pyramid whose low-frequency energy flows into the latent."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .cache import CausalCache
from .config import WFVAEConfig
from .layers.blocks import CausalSequential, FrameAttention, ResnetBlock2D, ResnetBlock3D
from .layers.conv import CausalConv3d, FrameConv2d
from .layers.norm import make_norm
from .layers.resample import Downsample, Spatial2xTime2x3DDownsample
from .layers.wavelet import HaarWavelet2D, HaarWavelet3D

_DOWNSAMPLERS = {"Downsample": Downsample, "Spatial2xTime2x3DDownsample": Spatial2xTime2x3DDownsample}
_WAVELETS = {"HaarWaveletTransform2D": HaarWavelet2D, "HaarWaveletTransform3D": HaarWavelet3D}


class Encoder(nn.Module):
    """(B, 3, T, H, W) -> posterior moments (B, 2 * latent_dim, 1 + (T-1)/tc, H/8, W/8).

    The input is split by a 3D Haar transform (2x in space and time). Its low band is split
    again at level 1 (2D or 3D Haar) and level 2 (3D Haar); each level's coefficients enter
    the main convolutional path at the matching resolution ("energy flow").
    """

    def __init__(self, config: WFVAEConfig) -> None:
        super().__init__()
        base, flow, norm = config.base_channels, config.encoder_energy_flow_hidden_size, config.norm_type
        blocks = config.encoder_num_resblocks
        self.down1 = CausalSequential(
            FrameConv2d(24, base, kernel_size=3, padding=1),
            *[ResnetBlock2D(base, base, norm, config.dropout) for _ in range(blocks)],
            _DOWNSAMPLERS[config.l1_dowmsample_block](base, base),
        )
        self.down2 = CausalSequential(
            FrameConv2d(base + flow, 2 * base, kernel_size=3, padding=1),
            *[ResnetBlock3D(2 * base, 2 * base, norm, config.dropout) for _ in range(blocks)],
            Spatial2xTime2x3DDownsample(2 * base, 2 * base),
        )
        l1_channels = 12 if config.l1_downsample_wavelet == "HaarWaveletTransform2D" else 24
        self.connect_l1 = FrameConv2d(l1_channels, flow, kernel_size=3, padding=1)
        self.connect_l2 = FrameConv2d(24, flow, kernel_size=3, padding=1)
        mid = [ResnetBlock3D(2 * base + flow, 4 * base, norm, config.dropout),
               ResnetBlock3D(4 * base, 4 * base, norm, config.dropout)]
        if config.use_attention:
            mid.insert(1, FrameAttention(4 * base, norm))
        self.mid = CausalSequential(*mid)
        self.norm_out = make_norm(norm, 4 * base, per_frame=False)
        self.conv_out = CausalConv3d(4 * base, 2 * config.latent_dim, kernel_size=3, padding=1)
        self.wavelet_transform_in = HaarWavelet3D()
        self.wavelet_transform_l1 = _WAVELETS[config.l1_downsample_wavelet]()
        self.wavelet_transform_l2 = HaarWavelet3D()

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        coeffs = self.wavelet_transform_in(x, cache)
        l1_coeffs = self.wavelet_transform_l1(coeffs[:, :3], cache)
        l2_coeffs = self.wavelet_transform_l2(l1_coeffs[:, :3], cache)
        # Every branch below is causal without look-ahead, so all of them produce the same
        # number of frames for any chunk: the concatenations need no alignment buffer.
        h = torch.cat([self.down1(coeffs, cache), self.connect_l1(l1_coeffs)], dim=1)
        h = torch.cat([self.down2(h, cache), self.connect_l2(l2_coeffs)], dim=1)
        h = self.mid(h, cache)
        return self.conv_out(F.silu(self.norm_out(h, cache)), cache)
