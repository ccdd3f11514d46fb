"""LatentDataset yields exactly the committed rows, with their latents and fields, as asked."""

from __future__ import annotations

import shutil

import pytest
import torch

from pipeline.dataset import ROW_FIELDS, LatentDataset
from pipeline.output.schema import tensor_from_bytes
from tests.support.outputs import ids, read_rows


def test_yields_every_committed_row_once_and_nothing_from_uncommitted_files(moments):
    samples = list(LatentDataset(str(moments.out)))
    rows = read_rows(moments.out, shards=moments.committed)
    assert ids(samples) == ids(rows) and len(rows) == 2 * 7 * 2  # 2 shards x 7 good videos x 2 clips
    leftover = {s["shard"] for s in samples} & set(moments.given_up)
    assert not leftover, "rows of a latents file without a commit marker were read"


def test_a_sample_carries_its_latent_and_every_field_of_its_row(moments):
    rows = {(r["key"], r["clip"]): r for r in read_rows(moments.out, shards=moments.committed)}
    for sample in LatentDataset(str(moments.out)):
        row = rows[(sample["key"], sample["clip"])]
        expected = tensor_from_bytes(row["latent"], row["latent_shape"], row["latent_dtype"])
        assert sample["latent"].dtype == torch.bfloat16 and list(sample["latent"].shape) == row["latent_shape"]
        assert torch.equal(sample["latent"], expected)
        assert set(sample) == {"latent", *ROW_FIELDS}
        assert all(sample[name] == row.get(name, "video") for name in ROW_FIELDS)  # no media_type column: video
        assert sample["caption"] == f"caption {sample['key']}"


def test_two_latent_shapes_come_from_the_buckets(moments):
    shapes = {tuple(s["latent"].shape) for s in LatentDataset(str(moments.out))}
    assert shapes == {(4, 2, 4, 4), (4, 2, 8, 4)}


@pytest.mark.parametrize("dtype", [torch.float32, "float16", torch.bfloat16])
def test_dtype_converts_the_stored_values(moments, dtype):
    raw = list(LatentDataset(str(moments.out)))
    converted = list(LatentDataset(str(moments.out), dtype=dtype))
    for a, b in zip(raw, converted):
        assert b["latent"].dtype == (getattr(torch, dtype) if isinstance(dtype, str) else dtype)
        assert torch.equal(b["latent"], a["latent"].to(b["latent"].dtype))


def test_fields_limits_what_a_sample_carries(moments):
    sample = next(iter(LatentDataset(str(moments.out), fields=["key", "caption"])))
    assert set(sample) == {"latent", "key", "caption"}
    bare = next(iter(LatentDataset(str(moments.out), fields=[])))
    assert set(bare) == {"latent"}


def test_float16_storage_and_a_single_shard(mean_only):
    samples = list(LatentDataset(str(mean_only.out)))
    rows = read_rows(mean_only.out, shards=mean_only.committed)
    assert ids(samples) == ids(rows) and len(rows) == 4
    assert all(s["latent"].dtype == torch.float16 and s["latent"].shape == (4, 2, 4, 4) for s in samples)
    assert torch.equal(samples[0]["latent"], tensor_from_bytes(rows[0]["latent"], [4, 2, 4, 4], "float16"))


def test_samples_do_not_share_values(moments):
    first, second = list(LatentDataset(str(moments.out), fields=["key"]))[:2]
    before = second["latent"].clone()
    first["latent"].fill_(7)  # a training loop may modify its batch in place
    assert torch.equal(second["latent"], before)


def test_len_and_facts(moments):
    dataset = LatentDataset(str(moments.out))
    assert len(dataset) == dataset.num_rows == 28 and dataset.shards == list(moments.committed)
    assert "rows=28" in repr(dataset) and dataset.stored == "moments"


def test_opening_reads_the_run_files_not_every_commit_record(moments, tmp_path):
    """At 10^6 shards a record per shard is 10^6 reads: the run files (``_runs/``) give each shard's rows."""
    copy = tmp_path / "out"
    shutil.copytree(moments.out, copy)
    for record in (copy / "_committed").glob("*.json"):
        record.write_text("not read")  # the marker's name still says the shard is committed
    assert len(list(LatentDataset(str(copy)))) == len(list(LatentDataset(str(moments.out)))) > 0
