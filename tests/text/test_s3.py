"""A text model on object storage (moto's real S3 server): fetched once per machine into the cache, its
folder put together from checksum-named files, loaded as the local folder is."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest
import torch

from pipeline.text import load_text_encoder, read_text_config
from pipeline.text.fetch import fetch_text_model
from tests.text.test_equivalence import CAPTIONS

BUCKET = "text-models"


@pytest.fixture(scope="module")
def s3(local_s3):
    local_s3.create_bucket(BUCKET)
    return local_s3


def upload(s3, folder: Path) -> str:
    prefix = f"{folder.name}-{uuid.uuid4().hex[:8]}"
    for path in sorted(folder.iterdir()):
        s3.put(BUCKET, f"{prefix}/{path.name}", path.read_bytes())
    return f"s3://{BUCKET}/{prefix}/"


def test_a_sharded_full_checkpoint_loads_from_s3_as_from_its_folder(s3, text_models, tmp_path):
    folder = text_models["umt5-full"]
    url = upload(s3, folder)
    remote = load_text_encoder(url, max_text_tokens=40, storage_options=s3.storage_options, cache_dir=tmp_path)
    local = load_text_encoder(folder, max_text_tokens=40)
    assert remote.identity.differences(local.identity) == [] and remote.identity.source == url
    for one, other in zip(remote.encode(CAPTIONS), local.encode(CAPTIONS)):
        assert torch.equal(one, other)
    assert read_text_config(url, s3.storage_options)["model_type"] == "umt5"


def test_it_is_fetched_once_and_only_the_files_the_model_needs(s3, text_models, tmp_path):
    folder = text_models["t5-full"]
    url = upload(s3, folder)
    first = fetch_text_model(url, s3.storage_options, tmp_path)
    again = fetch_text_model(url, s3.storage_options, tmp_path)
    assert first.downloaded and not again.downloaded and again.folder == first.folder
    assert "generation_config.json" not in first.sha256  # not read by the encoder
    assert set(first.sha256) == {path.name for path in folder.iterdir()} - {"generation_config.json"}
    for name, digest in first.sha256.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
        assert (first.folder / name).read_bytes() == (folder / name).read_bytes()
        assert (first.folder / name).resolve() == (tmp_path / "blobs" / digest / name)


def test_a_replaced_file_is_fetched_again(s3, text_models, tmp_path):
    folder = text_models["mt5"]
    url = upload(s3, folder)
    first = fetch_text_model(url, s3.storage_options, tmp_path)
    key = url.removeprefix(f"s3://{BUCKET}/") + "tokenizer_config.json"
    s3.put(BUCKET, key, (folder / "tokenizer_config.json").read_bytes() + b"\n")
    second = fetch_text_model(url, s3.storage_options, tmp_path)
    assert second.downloaded and second.folder != first.folder
    assert second.sha256["tokenizer_config.json"] != first.sha256["tokenizer_config.json"]
    assert {name: digest for name, digest in second.sha256.items() if name != "tokenizer_config.json"} == \
        {name: digest for name, digest in first.sha256.items() if name != "tokenizer_config.json"}


def test_a_missing_remote_folder_names_what_is_expected(s3, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"s3://text-models/nothing-here/: not found \(expected a folder"):
        load_text_encoder(f"s3://{BUCKET}/nothing-here/", storage_options=s3.storage_options, cache_dir=tmp_path)
