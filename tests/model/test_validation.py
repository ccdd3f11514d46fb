"""Invalid inputs raise ValueError saying what is allowed (the reference silently truncates)."""

import pytest
import torch

from .conftest import random_video


@pytest.mark.parametrize("frames", [2, 4, 6, 16, 18])
def test_frame_count_must_be_one_plus_multiple_of_compression(tiny_vae, frames):
    tc = tiny_vae.temporal_compression
    if (frames - 1) % tc == 0:
        pytest.fail("test bug: valid length")
    with pytest.raises(ValueError, match=rf"{frames} frames; .* 1 \+ a multiple of {tc} frames .* nearest valid"):
        tiny_vae.encode(random_video(frames))


def test_zero_frames(tiny_vae):
    with pytest.raises(ValueError, match="0 frames"):
        tiny_vae.encode(torch.zeros(1, 3, 0, 16, 16))


@pytest.mark.parametrize("height, width", [(30, 32), (32, 36), (4, 8), (12, 16)])
def test_size_must_be_multiple_of_8(tiny_vae, height, width):
    with pytest.raises(ValueError, match=f"multiples of 8 .* got {height}x{width}"):
        tiny_vae.encode(random_video(1, height=height, width=width))


def test_channels_and_rank(tiny_vae):
    with pytest.raises(ValueError, match="3 \\(RGB\\) channels .* got 4"):
        tiny_vae.encode(torch.zeros(1, 4, 5, 16, 16))
    with pytest.raises(ValueError, match="add a batch dimension"):
        tiny_vae.encode(torch.zeros(3, 5, 16, 16))
    with pytest.raises(ValueError, match="floating point in \\[-1, 1\\], got torch.uint8"):
        tiny_vae.encode(torch.zeros(1, 3, 5, 16, 16, dtype=torch.uint8))
    with pytest.raises(TypeError, match="torch.Tensor"):
        tiny_vae.encode([[0.0]])


@pytest.mark.parametrize("chunk", [0, -4, 3, 6, 2.0, True, "8"])
def test_invalid_encode_chunk_sizes(tiny_vae, chunk):
    tc = tiny_vae.temporal_compression
    if isinstance(chunk, int) and not isinstance(chunk, bool) and chunk > 0 and chunk % tc == 0:
        chunk = tc + 1
    with pytest.raises(ValueError, match=f"chunk_frames must be a positive multiple of the temporal compression \\({tc}"):
        tiny_vae.encode(random_video(1 + tc), chunk_frames=chunk)


@pytest.mark.parametrize("chunk", [0, -1, 1.5, "2"])
def test_invalid_decode_chunk_sizes(tiny_vae, chunk):
    latents = torch.zeros(1, tiny_vae.latent_channels, 3, 2, 2)
    with pytest.raises(ValueError, match="counts latent frames and must be a positive integer"):
        tiny_vae.decode(latents, chunk_frames=chunk)


def test_invalid_latents(tiny_vae):
    c = tiny_vae.latent_channels
    with pytest.raises(ValueError, match=f"must have {c} channels"):
        tiny_vae.decode(torch.zeros(1, c + 1, 3, 2, 2))
    with pytest.raises(ValueError, match="at least one frame"):
        tiny_vae.decode(torch.zeros(1, c, 0, 2, 2))
    with pytest.raises(ValueError, match="shape"):
        tiny_vae.decode(torch.zeros(c, 3, 2, 2))


def test_stream_rejects_a_size_change_mid_clip(tiny_vae):
    stream = tiny_vae.stream_encoder(chunk_frames=tiny_vae.temporal_compression)
    stream.push(random_video(1, height=16, width=16))
    with pytest.raises(ValueError, match="one clip per stream"):
        stream.push(random_video(1, height=16, width=24))
