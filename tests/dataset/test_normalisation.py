"""Normalisation with the model's scale/shift or the job's measured statistics, and posterior sampling."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
import torch

from pipeline.dataset import LatentDataset
from pipeline.output.schema import read_file_metadata, tensor_from_bytes
from tests.support.outputs import read_rows


def _per_channel(values):
    return torch.tensor(values, dtype=torch.float32).view(-1, 1, 1, 1)


def test_model_normalisation_uses_the_files_scale_and_shift(moments):
    metadata = read_file_metadata(pq.read_schema(moments.out / "latents" / f"{moments.committed[0]}.parquet"))
    scale, shift = _per_channel(metadata["scale"]), _per_channel(metadata["shift"])
    dataset = LatentDataset(str(moments.out), normalize="model", dtype=torch.float32)
    for raw, normalised in zip(LatentDataset(str(moments.out)), dataset):
        expected = (raw["latent"].float() - shift) * scale
        assert torch.allclose(normalised["latent"], expected, rtol=1e-6, atol=1e-7)
        assert torch.allclose(dataset.denormalize(normalised["latent"]), raw["latent"].float(), atol=1e-6)


def test_measured_normalisation_uses_the_statistics_of_the_summary(moments):
    stats = json.loads((moments.out / "_summary.json").read_text())["latent_stats"]
    mean, std = _per_channel(stats["mean"]), _per_channel(stats["std"])
    samples = list(LatentDataset(str(moments.out), normalize="measured", dtype="float32"))
    for raw, normalised in zip(LatentDataset(str(moments.out)), samples):
        assert torch.allclose(normalised["latent"], (raw["latent"].float() - mean) / std, rtol=1e-5, atol=1e-5)
    # over everything the job encoded, each channel is then about zero mean and unit std
    values = torch.cat([s["latent"].reshape(4, -1) for s in samples], dim=1)
    assert torch.allclose(values.mean(dim=1), torch.zeros(4), atol=2e-3)
    assert torch.allclose(values.std(dim=1), torch.ones(4), atol=2e-3)


def test_normalised_latents_keep_the_asked_dtype(moments):
    sample = next(iter(LatentDataset(str(moments.out), normalize="model")))
    assert sample["latent"].dtype == torch.bfloat16  # as stored, computed in float32


def test_posterior_samples_are_mean_plus_scaled_standard_noise(moments):
    rows = {(r["key"], r["clip"]): r for r in read_rows(moments.out, shards=moments.committed)}
    noise = []
    for sample in LatentDataset(str(moments.out), sample_posterior=True, dtype="float32"):
        row = rows[(sample["key"], sample["clip"])]
        mean = tensor_from_bytes(row["latent"], row["latent_shape"], row["latent_dtype"]).float()
        logvar = tensor_from_bytes(row["logvar"], row["latent_shape"], row["latent_dtype"]).float()
        noise.append(((sample["latent"] - mean) / torch.exp(0.5 * logvar)).flatten())
    noise = torch.cat(noise)
    assert noise.numel() >= 3000
    assert abs(noise.mean().item()) < 0.06 and abs(noise.std().item() - 1) < 0.06


def test_posterior_noise_is_seeded_by_seed_and_epoch(moments):
    def draws(seed, epoch):
        dataset = LatentDataset(str(moments.out), sample_posterior=True, seed=seed, fields=["key"])
        dataset.set_epoch(epoch)
        return torch.stack([s["latent"][:, :, :4, :4] for s in dataset])

    assert torch.equal(draws(1, 0), draws(1, 0))
    assert not torch.equal(draws(1, 0), draws(1, 1)) and not torch.equal(draws(1, 0), draws(2, 0))


def test_sampling_needs_stored_moments(mean_only):
    with pytest.raises(ValueError, match=r"sample_posterior=True needs .*moments.*stores only 'mean'.*--store moments"):
        LatentDataset(str(mean_only.out), sample_posterior=True)
