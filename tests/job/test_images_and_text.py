"""Images beside videos and each caption's text-encoder embedding, from one run of the job: the rows, the text
table, the summary, and the dataset that reads them back."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
import torch

from pipeline.dataset import LatentDataset
from pipeline.output.schema import read_file_metadata, tensor_from_bytes
from tests.support.jobs import SMALL_CLIPS, run_cli
from tests.support.outputs import read_rows, read_summary
from tests.support.shards import write_shards
from tests.support.text_models import make_text_model

IMAGES = {1: "jpg", 3: "png"}  # samples 1 and 3 of each shard are images (4 of 10 samples)


@pytest.fixture(scope="module")
def run(ray_head, tmp_path_factory):
    """2 shards x 5 samples (two of them images), clips of 2 per video, a tiny umT5 text encoder."""
    base = tmp_path_factory.mktemp("images-text")
    data = write_shards(base / "shards", 5, shards=2, frames=21, images=IMAGES)
    encoder = make_text_model(base / "umt5", "umt5")
    out = base / "out"
    result = run_cli(ray_head, "--input", data.spec, "--output", str(out), *SMALL_CLIPS, "--clips", "uniform:2",
                     "--text-encoder", str(encoder), "--max-text-tokens", "6", "--image-batch-size", "3")
    return data, encoder, out, result


def test_images_are_one_frame_clips_beside_the_videos(run):
    data, _, out, _ = run
    rows = read_rows(out)
    by_key = {}
    for row in rows:
        by_key.setdefault(row["key"], []).append(row)
    for name in data.names:
        for i, key in enumerate(data.good[name]):
            kind = "image" if i in IMAGES else "video"
            clips = by_key[key]
            assert [row["media_type"] for row in clips] == [kind] * (1 if kind == "image" else 2), key
            for row in clips:
                assert row["latent_shape"][1] == (1 if kind == "image" else 2)  # 5 frames: 1 + 4/4 latent frames
                assert (row["fps"] is None) == (kind == "image") and row["num_frames"] == (1 if kind == "image" else 5)
    summary = read_summary(out)
    assert summary["media"] == {"image": 4, "video": 12} and summary["clips"] == 16
    assert summary["captioned"] == 16 and summary["samples_failed"] == 0


def test_each_caption_is_embedded_once_as_transformers_embeds_it(run):
    from transformers import AutoTokenizer, UMT5EncoderModel

    data, encoder, out, _ = run
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    model = UMT5EncoderModel.from_pretrained(encoder).eval()
    for name in data.names:
        table = pq.read_table(out / "text" / f"{name}.parquet")
        metadata = read_file_metadata(table.schema)
        assert metadata["max_text_tokens"] == 6 and metadata["text_dtype"] == "float32" and metadata["text_dim"] == 32
        texts = table.to_pylist()
        assert [text["key"] for text in texts] == data.good[name]  # once per sample, however many clips
        latents = read_rows(out, shards=[name])
        for row in latents:
            assert texts[row["text_row"]]["key"] == row["key"]
        for text in texts:
            tokens = tokenizer(f"caption {text['key']}", truncation=True, max_length=6, return_tensors="pt")
            with torch.inference_mode():
                expected = model(**tokens).last_hidden_state[0]
            stored = tensor_from_bytes(text["text_embedding"], [text["text_length"], expected.shape[1]], "float32")
            assert text["text_length"] == tokens["input_ids"].shape[1] <= 6
            torch.testing.assert_close(stored, expected, atol=1e-5, rtol=0)


def test_the_dataset_delivers_media_types_and_embeddings(run):
    data, _, out, _ = run
    samples = list(LatentDataset(str(out)))
    assert len(samples) == 16
    for sample in samples:
        assert sample["media_type"] in ("image", "video")
        assert sample["text_embedding"].shape == (sample["text_length"], 32) and sample["text_length"] > 1
    batches = list(LatentDataset(str(out), batch_size=4))
    for batch in batches:
        assert len(set(batch["media_type"])) == 1  # images and videos in batches of their own
        assert batch["text_mask"].shape == batch["text_embedding"].shape[:2]


def test_the_output_is_refused_with_another_token_limit_or_without_the_encoder(ray_head, run):
    data, encoder, out, _ = run
    other = run_cli(ray_head, "--input", data.spec, "--output", str(out), *SMALL_CLIPS, "--clips", "uniform:2",
                    "--text-encoder", str(encoder), "--max-text-tokens", "8", check=False, timeout=120)
    assert other.returncode == 2 and "max_text_tokens: 6 then, 8 now" in other.stderr
    none = run_cli(ray_head, "--input", data.spec, "--output", str(out), *SMALL_CLIPS, "--clips", "uniform:2",
                   check=False, timeout=120)
    assert none.returncode == 2 and "max_text_tokens: 6 then, None now" in none.stderr
