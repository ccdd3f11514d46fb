"""committed_files: what Ray Data, pyarrow and plain numpy read of an output is exactly what
LatentDataset yields; files of uncommitted shards never appear."""

from __future__ import annotations

import numpy as np
import pyarrow.dataset as pads
import pytest
import torch

from pipeline.dataset import LatentDataset
from pipeline.output.committed import committed_files
from pipeline.output.schema import tensor_from_bytes
from tests.support.encoded_outputs import published_output


def latent_array(payload: bytes, shape: list[int], dtype: str) -> np.ndarray:
    """The README's plain-numpy decode of a ``latent`` cell (numpy has no bfloat16: widened, exactly)."""
    if dtype == "bfloat16":
        bits = np.frombuffer(payload, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32).reshape(shape)
    return np.frombuffer(payload, dtype={"float32": "<f4", "float16": "<f2"}[dtype]).reshape(shape)


def assert_same_rows(table_rows: list[dict], dataset: LatentDataset) -> None:
    samples = list(dataset)
    assert len(table_rows) == len(samples) > 0
    for row, sample in zip(table_rows, samples, strict=True):
        assert (row["key"], row["clip"], row["caption"]) == (sample["key"], sample["clip"], sample["caption"])
        decoded = latent_array(row["latent"], row["latent_shape"], row["latent_dtype"])
        assert decoded.dtype != np.uint8 and decoded.shape == tuple(sample["latent"].shape)
        assert np.array_equal(decoded, sample["latent"].float().numpy())


@pytest.fixture(scope="module")
def output(tmp_path_factory):
    return published_output(tmp_path_factory.mktemp("committed") / "out", shards=4, uncommitted=(1, 2))


def test_only_committed_shards_are_listed(output):
    files = committed_files(str(output.out))
    assert files.shards == output.committed == ("part-000000", "part-000003")
    assert files.urls == tuple(str(output.out / "latents" / f"{name}.parquet") for name in output.committed)
    assert len(files) == 2 and all((output.out / "latents" / f"{n}.parquet").exists() for n in output.given_up)
    errors = committed_files(str(output.out), kind="errors")
    assert [u.rsplit("/", 2)[-2:] for u in errors.urls] == [["errors", "part-000000.parquet"],
                                                           ["errors", "part-000003.parquet"]]


def test_pyarrow_dataset_reads_what_latent_dataset_yields(output):
    files = committed_files(str(output.out))
    table = pads.dataset(list(files.paths), format="parquet", filesystem=files.filesystem).to_table()
    assert_same_rows(table.to_pylist(), LatentDataset(str(output.out)))


def test_ray_data_reads_what_latent_dataset_yields(output, ray_head):
    import ray

    files = committed_files(str(output.out))
    rows = ray.data.read_parquet(list(files.paths), filesystem=files.filesystem).take_all()
    rows.sort(key=lambda r: (r["shard"], r["key"], r["clip"]))  # Ray Data does not promise an order
    assert_same_rows(rows, LatentDataset(str(output.out)))


@pytest.mark.parametrize("latent_dtype", ["float32", "float16"])
def test_numpy_decode_of_every_stored_dtype(tmp_path, latent_dtype):
    out = published_output(tmp_path / "out", shards=1, rows=3, latent_dtype=latent_dtype, uncommitted=())
    files = committed_files(str(out.out))
    for row in pads.dataset(list(files.paths), filesystem=files.filesystem).to_table().to_pylist():
        expected = tensor_from_bytes(row["latent"], row["latent_shape"], latent_dtype)
        assert torch.equal(torch.from_numpy(latent_array(row["latent"], row["latent_shape"], latent_dtype).copy()),
                           expected)


def test_an_output_on_s3(output, local_s3, ray_head):
    import ray

    local_s3.create_bucket("committed-files")
    for path in output.out.rglob("*"):
        if path.is_file():
            local_s3.put("committed-files", f"job/{path.relative_to(output.out).as_posix()}", path.read_bytes())
    files = committed_files("s3://committed-files/job", local_s3.storage_options)
    assert files.urls == ("s3://committed-files/job/latents/part-000000.parquet",
                          "s3://committed-files/job/latents/part-000003.parquet")
    local = LatentDataset(str(output.out))
    assert_same_rows(pads.dataset(list(files.paths), filesystem=files.filesystem).to_table().to_pylist(), local)
    rows = sorted(ray.data.read_parquet(list(files.paths), filesystem=files.filesystem).take_all(),
                  key=lambda r: (r["shard"], r["key"], r["clip"]))
    assert_same_rows(rows, local)


def test_not_an_output(tmp_path):
    with pytest.raises(FileNotFoundError, match="no _job.json"):
        committed_files(str(tmp_path))
    with pytest.raises(ValueError, match="kind must be one of"):
        committed_files(str(tmp_path), kind="parquet")
