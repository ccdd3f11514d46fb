"""The Causal Cache: chunked and streamed encode/decode equal the whole-clip passes, bit for bit (CPU, float32):
each chunk sees, through the cache, exactly the frames it would see in the whole pass.

On one thread, as the encoder actor runs on a CPU node (one CPU each), and at the frame sizes used here.
The equality is PyTorch's as much as ours: its CPU convolutions pick how to split their sums from the
input's shape and the thread count, so with several threads, or at some small frame sizes (16x24, even
on one thread), a chunk and the whole clip add in different orders and differ by ~1e-7 to 1e-6.
"""

import pytest
import torch

from wfvae import WFVAE, CausalCache

from .conftest import random_video


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    assert a.shape == b.shape and a.dtype == b.dtype == torch.float32
    return torch.equal(a, b)


@pytest.mark.parametrize("latent_frames", [1, 2, 3, 4, 6])
def test_chunked_encode_equals_full_encode(tiny_vae, latent_frames):
    tc = tiny_vae.temporal_compression
    video = random_video(1 + (latent_frames - 1) * tc, seed=latent_frames)
    full = tiny_vae.encode(video)
    for chunk_frames in (tc, 2 * tc, 3 * tc, 64):
        chunked = tiny_vae.encode(video, chunk_frames=chunk_frames)
        assert _same(chunked.mean, full.mean)
        assert _same(chunked.logvar, full.logvar)


def test_chunked_encode_of_a_batch(tiny_vae):
    tc = tiny_vae.temporal_compression
    video = random_video(1 + 4 * tc, batch=3, seed=5)
    assert _same(tiny_vae.encode(video, chunk_frames=tc).mean, tiny_vae.encode(video).mean)


PUSH_SIZES = [[1] * 25, [3, 7, 0, 15], [25], [2, 23]]


def _pieces(video: torch.Tensor, push_sizes: list[int]) -> list[torch.Tensor]:
    """The clip cut in pieces of these sizes (empty past its end), the last one taking whatever is left."""
    sizes = list(push_sizes)
    sizes[-1] += video.shape[2] - sum(sizes)  # the same clip whatever the grouping
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    return [video[:, :, start:start + size] for start, size in zip(starts, sizes)]


@pytest.mark.parametrize("push_sizes", PUSH_SIZES)
def test_stream_encoder_with_any_push_sizes(tiny_vae, push_sizes):
    tc = tiny_vae.temporal_compression
    video = random_video(1 + 3 * tc, seed=7)
    stream = tiny_vae.stream_encoder(chunk_frames=tc)
    parts = [stream.push(piece).mean for piece in _pieces(video, push_sizes)]
    parts.append(stream.close().mean)
    assert _same(torch.cat(parts, dim=2), tiny_vae.encode(video).mean)


@pytest.mark.parametrize("push_sizes", PUSH_SIZES)
def test_fed_stream_returns_the_whole_clip_at_close(tiny_vae, push_sizes):
    """feed() keeps the latents in the stream (memory flat in clip length); close() hands over exactly
    what push() would have returned, joined."""
    tc = tiny_vae.temporal_compression
    video = random_video(1 + 6 * tc, batch=2, seed=8)
    stream = tiny_vae.stream_encoder(chunk_frames=tc)
    for piece in _pieces(video, push_sizes):
        assert stream.feed(piece) is None
    fed, full = stream.close(), tiny_vae.encode(video)
    assert _same(fed.mean, full.mean) and _same(fed.logvar, full.logvar)


def test_pushed_latents_are_not_handed_out_again_by_close(tiny_vae):
    tc = tiny_vae.temporal_compression
    video = random_video(1 + 4 * tc, seed=9)
    stream = tiny_vae.stream_encoder(chunk_frames=tc)
    first = stream.push(video[:, :, :1 + tc])  # latents 0 and 1 go to the caller
    stream.feed(video[:, :, 1 + tc:])
    rest = stream.close()
    full = tiny_vae.encode(video)
    assert first.mean.shape[2] + rest.mean.shape[2] == full.mean.shape[2]
    assert _same(torch.cat([first.mean, rest.mean], dim=2), full.mean)
    assert _same(torch.cat([first.logvar, rest.logvar], dim=2), full.logvar)


def test_stream_encoder_returns_latents_as_soon_as_chunks_complete(fixtures_dir):
    vae = WFVAE.from_pretrained(fixtures_dir / "tiny-4x")
    stream = vae.stream_encoder(chunk_frames=8)
    counts = [stream.push(frame).mean.shape[2] for frame in random_video(17).split(1, dim=2)]
    # frame 0 alone gives latent 0; then each 8-frame chunk gives 2 latent frames
    assert counts[0] == 1 and counts[8] == 2 and counts[16] == 2 and sum(counts) == 5
    assert stream.close().mean.shape[2] == 0


def test_stream_encoder_refuses_an_incomplete_clip(fixtures_dir):
    vae = WFVAE.from_pretrained(fixtures_dir / "tiny-4x")
    stream = vae.stream_encoder(chunk_frames=4)
    stream.push(random_video(7))
    with pytest.raises(ValueError, match="the clip has 7 frames; .* 1 \\+ a multiple of 4 .* last 2 frame"):
        stream.close()
    with pytest.raises(RuntimeError, match="closed"):
        stream.push(random_video(4))


@pytest.mark.parametrize("latent_frames", [1, 2, 3, 4, 5, 6, 7])
def test_chunked_decode_equals_full_decode_for_every_length(tiny_vae, latent_frames):
    """Includes even and odd (latent_frames - 1), where the reference's chunked decode fails."""
    latents = torch.randn(1, tiny_vae.latent_channels, latent_frames, 4, 6, generator=torch.Generator().manual_seed(3))
    full = tiny_vae.decode(latents)
    assert full.shape[2] == 1 + (latent_frames - 1) * tiny_vae.temporal_compression
    for chunk_frames in (1, 2, 3, 5):
        assert _same(tiny_vae.decode(latents, chunk_frames=chunk_frames), full)


def test_stream_decoder_one_latent_at_a_time(tiny_vae):
    latents = torch.randn(2, tiny_vae.latent_channels, 5, 4, 4, generator=torch.Generator().manual_seed(4))
    stream = tiny_vae.stream_decoder(chunk_frames=1)
    frames = [stream.push(z) for z in latents.split(1, dim=2)] + [stream.close()]
    assert _same(torch.cat(frames, dim=2), tiny_vae.decode(latents))


def test_round_trip_through_chunked_calls(tiny_vae):
    tc = tiny_vae.temporal_compression
    video = random_video(1 + 3 * tc)
    full = tiny_vae.decode(tiny_vae.encode(video).mean)
    chunked = tiny_vae.decode(tiny_vae.encode(video, chunk_frames=tc).mean, chunk_frames=2)
    assert _same(chunked, full)


def _cache_sizes(vae: WFVAE, latent_frames: int) -> list[int]:
    tc = vae.temporal_compression
    video = random_video(1 + (latent_frames - 1) * tc, height=16, width=16)
    cache = CausalCache()
    sizes = []
    for piece in [video[:, :, :1], *video[:, :, 1:].split(tc, dim=2)]:
        vae.encoder(piece, cache)
        sizes.append(cache.nbytes())
    return sizes


def test_encoder_cache_does_not_grow_with_clip_length(tiny_vae):
    short, long = _cache_sizes(tiny_vae, 3), _cache_sizes(tiny_vae, 12)
    assert len(set(long[1:])) == 1 and long[-1] == short[-1] > 0


def test_decoder_cache_does_not_grow_with_clip_length(tiny_vae):
    latents = torch.randn(1, tiny_vae.latent_channels, 12, 2, 2)
    cache = CausalCache()
    sizes = []
    for piece in latents.split(1, dim=2):
        tiny_vae.decoder(piece, cache)
        sizes.append(cache.nbytes())
    assert len(set(sizes[2:])) == 1 and sizes[-1] > 0


def test_chunked_calls_on_a_groupnorm_model_are_refused():
    from wfvae import WFVAEConfig

    config = WFVAEConfig(norm_type="groupnorm", base_channels=32, latent_dim=4, encoder_energy_flow_hidden_size=32,
                         decoder_energy_flow_hidden_size=32)
    vae = WFVAE.from_config(config)
    video = random_video(9, height=16, width=16)
    posterior = vae.encode(video)  # the whole clip at once is fine
    assert posterior.mean.shape == (1, 4, 3, 2, 2)
    assert vae.decode(posterior.mean).shape == video.shape
    for call in (lambda: vae.encode(video, chunk_frames=4), lambda: vae.decode(posterior.mean, chunk_frames=1),
                 lambda: vae.stream_encoder(4)):
        with pytest.raises(ValueError, match="groupnorm, whose statistics span all frames"):
            call()
    with pytest.raises(ValueError, match="GroupNorm"):  # the layer guards itself too
        vae.encoder(video[:, :, :1], CausalCache())
