"""WFVAE: the public model. Knows about tensors and checkpoints, nothing about pipelines."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .cache import CausalCache
from .config import WFVAEConfig
from .decoder import Decoder
from .encoder import Encoder
from .posterior import DiagonalGaussian
from .presets import preset
from .streaming import StreamDecoder, StreamEncoder
from .validation import check_latents, check_video


class WFVAE(nn.Module):
    """Wavelet-driven energy-flow video VAE (arXiv 2411.17459), compatible with released weights.

    ``encode(video, chunk_frames=k)`` runs frame 0, then chunks of k frames, through the
    Causal Cache: the same latents as a whole-clip encode, in memory set by k.
    """

    def __init__(self, config: WFVAEConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)

    # -- construction ----------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | Path, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32, *, allow_pickle: bool = False,
                        storage_options: dict[str, Any] | None = None,
                        cache_dir: str | Path | None = None) -> "WFVAE":
        """Load a release folder (config.json + safetensors), a training checkpoint (*.ckpt next
        to config.json), a Hugging Face repo id, or either layout at an fsspec URL
        (``s3://bucket/models/WF-VAE-L-16Chn/`` with ``storage_options``; fetched once per machine
        into ``cache_dir``, default ``$WFVAE_CACHE`` or ``~/.cache/wfvae-latents``). Loading is
        strict: a file that does not match the config exactly raises ``CheckpointError``."""
        from .loading import load_pretrained

        return load_pretrained(cls, path_or_repo_id, device=device, dtype=dtype, allow_pickle=allow_pickle,
                               storage_options=storage_options, cache_dir=cache_dir)

    def save_pretrained(self, folder: str | Path, *, metadata: dict[str, str] | None = None,
                        dtype: torch.dtype | None = None) -> Path:
        """Write the released layout (config.json + diffusion_pytorch_model.safetensors) that
        ``from_pretrained`` reads back exactly; ``dtype`` converts the weights, ``metadata`` adds
        string key-values to the safetensors header."""
        from .saving import save_pretrained

        return save_pretrained(self, folder, metadata=metadata, dtype=dtype)

    @classmethod
    def from_config(cls, config: WFVAEConfig | str, device: str | torch.device = "cpu",
                    dtype: torch.dtype = torch.float32, seed: int | None = 0) -> "WFVAE":
        """A randomly initialised model of a config or preset name (benchmarks, tests)."""
        config = preset(config) if isinstance(config, str) else config
        if seed is not None:
            torch.manual_seed(seed)
        return cls(config).to(device=device, dtype=dtype).eval()

    # -- facts -------------------------------------------------------------------------
    @property
    def temporal_compression(self) -> int:
        return self.config.temporal_compression

    @property
    def spatial_compression(self) -> int:
        return self.config.spatial_compression

    @property
    def latent_channels(self) -> int:
        return self.config.latent_dim

    @property
    def device(self) -> torch.device:
        return self.decoder.conv_in.conv.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.decoder.conv_in.conv.weight.dtype

    def weights_checksum(self) -> str:
        """SHA-256 over parameter names, dtypes and values: identifies the weights, whatever file held them."""
        digest = hashlib.sha256()
        for name, tensor in sorted(self.state_dict().items()):
            data = tensor.detach().cpu().contiguous()
            digest.update(f"{name}:{data.dtype}:{tuple(data.shape)};".encode())
            digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
        return digest.hexdigest()

    # -- encode / decode ---------------------------------------------------------------
    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(device=self.device, dtype=self.dtype, non_blocking=True)

    @torch.inference_mode()
    def encode(self, video: torch.Tensor, chunk_frames: int | None = None) -> DiagonalGaussian:
        """video (B, 3, T, H, W) in [-1, 1], T = 1 + k * temporal_compression, H and W multiples of 8."""
        check_video(video, self.temporal_compression)
        if chunk_frames is None:
            return DiagonalGaussian.from_moments(self.encoder(self.prepare_input(video), CausalCache.whole_clip()))
        self._require_chunkable()
        stream = self.stream_encoder(chunk_frames)
        return DiagonalGaussian.cat([stream.push(video), stream.close()])

    @torch.inference_mode()
    def decode(self, latents: torch.Tensor, chunk_frames: int | None = None) -> torch.Tensor:
        """latents (B, C, t, h, w) -> video (B, 3, 1 + (t-1) * temporal_compression, 8h, 8w).

        ``chunk_frames`` counts latent frames per decoder call."""
        check_latents(latents, self.latent_channels)
        if latents.shape[2] < 1:
            raise ValueError("latents must have at least one frame")
        if chunk_frames is None:
            return self.decoder(self.prepare_input(latents), CausalCache.whole_clip())
        self._require_chunkable()
        stream = self.stream_decoder(chunk_frames)
        return torch.cat([stream.push(latents), stream.close()], dim=2)

    def stream_encoder(self, chunk_frames: int) -> StreamEncoder:
        self._require_chunkable()
        return StreamEncoder(self, chunk_frames)

    def stream_decoder(self, chunk_frames: int) -> StreamDecoder:
        self._require_chunkable()
        return StreamDecoder(self, chunk_frames)

    # -- latent normalisation ----------------------------------------------------------
    def normalize(self, latents: torch.Tensor) -> torch.Tensor:
        """(z - shift) * scale per channel, the convention of Open-Sora-Plan's WF-VAE releases."""
        scale, shift = self._scale_shift(latents)
        return (latents - shift) * scale

    def denormalize(self, latents: torch.Tensor) -> torch.Tensor:
        scale, shift = self._scale_shift(latents)
        return latents / scale + shift

    def _scale_shift(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel values shaped (C, 1, 1, 1): channels are dim -4 of (C,t,h,w) and (B,C,t,h,w)."""
        if latents.dim() not in (4, 5) or latents.shape[-4] != self.latent_channels:
            raise ValueError(f"latents must be (C, t, h, w) or (B, C, t, h, w) with C = {self.latent_channels}, "
                             f"got {tuple(latents.shape)}")
        scale, shift = self.config.latent_scale_shift()
        shape = (-1, 1, 1, 1)
        return (torch.tensor(scale, dtype=latents.dtype, device=latents.device).view(shape),
                torch.tensor(shift, dtype=latents.dtype, device=latents.device).view(shape))

    def _require_chunkable(self) -> None:
        if not self.config.chunkable:
            raise ValueError(f"this WF-VAE uses {self.config.norm_type}, whose statistics span all frames, so "
                             "chunked (Causal Cache) encoding/decoding would change the result; "
                             "use chunk_frames=None (whole clip)")
