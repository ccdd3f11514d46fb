"""A folder given as the input means the shards in it, on local disk and on S3 (moto's server)."""

from __future__ import annotations

import pytest

from pipeline.reading import list_shards
from tests.support.shards import make_shard

SHARD = make_shard([{"__key__": "s0", "txt": "caption"}])


def test_a_local_folder_means_its_shards(tmp_path):
    for name in ("b-000001.tar", "a-000000.tar.gz", "c.tgz", "notes.md", "list.txt"):
        (tmp_path / name).write_bytes(SHARD)
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "d.tar").write_bytes(SHARD)  # a subfolder's shards are not this folder's
    expected = [str(tmp_path / name) for name in ("a-000000.tar.gz", "b-000001.tar", "c.tgz")]
    assert list_shards(str(tmp_path)).urls == expected
    assert list_shards(f"{tmp_path}/").urls == expected
    assert list_shards(f"file://{tmp_path}").urls == expected


def test_an_empty_folder_is_refused_naming_what_it_looked_for(tmp_path):
    (tmp_path / "README").write_text("no shards here")
    with pytest.raises(ValueError, match=r"holds no shards \(files ending in \.tar, \.tar\.gz, \.tgz\)"):
        list_shards(str(tmp_path))


def test_a_missing_folder_with_a_trailing_slash_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no such folder"):
        list_shards(f"{tmp_path}/missing/")


def test_an_s3_prefix_means_its_shards(local_s3):
    local_s3.create_bucket("folders")
    for key in ("train/000001.tar", "train/000000.tar", "train/README", "train/sub/000002.tar", "empty/README"):
        local_s3.put("folders", key, SHARD)
    options = local_s3.storage_options
    expected = ["s3://folders/train/000000.tar", "s3://folders/train/000001.tar"]
    assert list_shards("s3://folders/train", options).urls == expected
    assert list_shards("s3://folders/train/", options).urls == expected
    with pytest.raises(ValueError, match="holds no shards"):
        list_shards("s3://folders/empty/", options)
    with pytest.raises(ValueError, match="no such folder"):
        list_shards("s3://folders/nothing-here/", options)
