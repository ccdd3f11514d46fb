"""Images beside videos, and caption embeddings joined to their samples: what a sample and a batch carry."""

from __future__ import annotations

import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from pipeline.dataset import TEXT_FIELDS, LatentDataset
from pipeline.output.schema import tensor_from_bytes
from tests.support.encoded_outputs import published_output
from tests.support.outputs import read_rows

TEXT_DIM = 8


@pytest.fixture(scope="module")
def output(tmp_path_factory):
    """2 shards x (4 videos of 2 clips + 2 images) = 20 rows; samples 1 (an image) and 3 (a video) of a shard
    have no caption."""
    return published_output(tmp_path_factory.mktemp("text") / "out", shards=2, rows=6, uncommitted=(), clips=2,
                            media_types=("video", "image", "video"), text_dim=TEXT_DIM, uncaptioned=(1, 3))


def _stored_embeddings(out) -> dict[str, torch.Tensor]:
    rows = [row for path in sorted((out / "text").glob("*.parquet")) for row in pq.read_table(path).to_pylist()]
    return {row["key"]: tensor_from_bytes(row["text_embedding"], [row["text_length"], TEXT_DIM], "bfloat16")
            for row in rows}


def test_a_sample_carries_its_media_type_and_its_captions_embedding(output):
    stored = _stored_embeddings(output.out)
    rows = read_rows(output.out, shards=output.committed)
    samples = list(LatentDataset(str(output.out)))
    assert [(s["key"], s["clip"], s["media_type"]) for s in samples] == \
        [(r["key"], r["clip"], r["media_type"]) for r in rows]
    assert [s["media_type"] for s in samples[:7]] == ["video", "video", "image", "video", "video", "video", "video"]
    for sample in samples:
        image = sample["media_type"] == "image"
        assert sample["latent"].shape[1] == (1 if image else 2) and (sample["fps"] is None) is image
        if sample["key"] in stored:
            assert torch.equal(sample["text_embedding"], stored[sample["key"]])
            assert sample["text_length"] == stored[sample["key"]].shape[0] > 0
            assert sample["caption"] is not None
        else:  # no caption: an empty embedding
            assert sample["text_embedding"].shape == (0, TEXT_DIM) and sample["text_embedding"].dtype == torch.bfloat16
            assert sample["text_length"] == 0 and sample["caption"] is None
    assert sum(sample["text_length"] == 0 for sample in samples) == 2 * 3  # a shard's sample 1 (image), 3 (2 clips)


def test_clips_of_one_video_get_equal_embeddings_that_do_not_share_memory(output):
    first, second = [s for s in LatentDataset(str(output.out)) if s["key"] == "part-000000-v00"]
    assert (first["clip"], second["clip"]) == (0, 1) and torch.equal(first["text_embedding"], second["text_embedding"])
    before = second["text_embedding"].clone()
    first["text_embedding"].fill_(3)  # a training loop may modify its batch in place
    assert torch.equal(second["text_embedding"], before)


def test_embeddings_come_in_the_datasets_dtype(output):
    stored = _stored_embeddings(output.out)
    for sample in LatentDataset(str(output.out), dtype="float32"):
        assert sample["text_embedding"].dtype == sample["latent"].dtype == torch.float32
        if sample["text_length"]:
            assert torch.equal(sample["text_embedding"], stored[sample["key"]].float())


def test_batches_pad_embeddings_to_their_longest_with_a_mask(output):
    stored = _stored_embeddings(output.out)
    seen = 0
    for batch in LatentDataset(str(output.out), batch_size=3, dtype="float16"):
        embeddings, mask, lengths = batch["text_embedding"], batch["text_mask"], batch["text_length"]
        assert embeddings.dtype == torch.float16 and mask.dtype == torch.bool
        assert embeddings.shape == (len(batch["key"]), int(lengths.max()), TEXT_DIM) == (*mask.shape, TEXT_DIM)
        assert mask.sum(dim=1).tolist() == lengths.tolist()
        for i, key in enumerate(batch["key"]):
            length = int(lengths[i])
            assert mask[i, :length].all() and not mask[i, length:].any()
            assert not embeddings[i, length:].any()  # padding is zeros
            if length:
                assert torch.equal(embeddings[i, :length], stored[key].half())
            seen += 1
    assert seen == 20


def test_images_and_videos_never_share_a_batch_unless_mixed(tmp_path):
    out = published_output(tmp_path / "out", shards=2, rows=6, uncommitted=(), video_latent_frames=1,
                           media_types=("video", "video", "image", "image")).out  # images and videos of one shape
    apart = list(LatentDataset(str(out), batch_size=3))
    assert all(len(set(batch["media_type"])) == 1 for batch in apart)
    assert sorted(len(b["key"]) for b in apart) == [1, 1, 2, 2, 3, 3]  # videos 4 + 4, images 2 + 2 (two shapes)
    for batch in apart:
        image = batch["media_type"][0] == "image"
        assert torch.isnan(batch["fps"]).all() if image else (batch["fps"] == 8).all()
    mixed = list(LatentDataset(str(out), batch_size=3, mix_media=True))
    assert any(len(set(batch["media_type"])) == 2 for batch in mixed)
    assert all(len({tuple(s) for s in batch["latent_shape"]}) == 1 for batch in mixed)
    assert sorted(len(b["key"]) for b in mixed) == [3, 3, 3, 3]  # per shape only: 6 + 6


def test_without_the_text_fields_the_text_files_are_never_opened(output, tmp_path):
    copy = tmp_path / "out"
    shutil.copytree(output.out, copy)
    without = LatentDataset(str(copy), fields=["key", "clip", "media_type"])
    with_text = LatentDataset(str(copy), fields=["key", "text_length"])
    for path in (copy / "text").glob("*.parquet"):  # made: now no text file can be read
        path.write_bytes(b"not parquet")
    samples = list(without)
    assert [(s["key"], s["clip"]) for s in samples] == [(r["key"], r["clip"]) for r in read_rows(copy)]
    assert all(set(s) == {"latent", "key", "clip", "media_type"} for s in samples)
    with pytest.raises(pa.ArrowInvalid, match="Parquet magic bytes not found"):
        list(with_text)
    shutil.rmtree(copy / "text")
    with pytest.raises(RuntimeError, match=r"text/part-000000.parquet is missing, though shard part-000000 is "
                                           "committed and its rows point into it"):
        list(with_text)


def test_text_length_alone_reads_no_embedding(output):
    samples = list(LatentDataset(str(output.out), fields=["key", "text_length"]))
    assert all(set(s) == {"latent", "key", "text_length"} for s in samples)
    assert [s["text_length"] for s in samples] == [s["text_length"] for s in LatentDataset(str(output.out))]


def test_an_output_without_a_text_encoder_has_no_text_fields(moments):
    sample = next(iter(LatentDataset(str(moments.out))))
    assert not set(TEXT_FIELDS) & set(sample) and sample["media_type"] == "video"  # an older output: videos
    with pytest.raises(ValueError, match=r"fields \['text_embedding'\]: this output has no text embeddings"):
        LatentDataset(str(moments.out), fields=["key", "text_embedding"])


def test_a_text_file_that_does_not_match_its_latents_is_refused(output, tmp_path):
    copy = tmp_path / "out"
    shutil.copytree(output.out, copy)
    path = copy / "text" / "part-000001.parquet"
    table = pq.read_table(path)
    keys = table.column("key").to_pylist()
    table = table.set_column(0, table.schema.field("key"), pa.array(keys[::-1], pa.string()))
    pq.write_table(table, path, row_group_size=32)
    with pytest.raises(RuntimeError, match=r"shard part-000001: the latent row of 'part-000001-v00' points to text "
                                           r"row 0, which is 'part-000001-v05'"):
        list(LatentDataset(str(copy)))
