"""Models on object storage: fetched once per machine into a checksum-named cache, loaded strictly.
Against moto's real S3 server (``local_s3``)."""

import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from wfvae import WFVAE, CheckpointError
from wfvae.loading import read_config
from wfvae.remote import fetch_model

REPO = Path(__file__).resolve().parents[2]
BUCKET = "models"


@pytest.fixture(scope="module")
def s3(local_s3):
    local_s3.create_bucket(BUCKET)
    return local_s3


def upload(s3, folder: Path, names: list[str] | None = None, **replace: bytes) -> str:
    """Upload files of ``folder`` (or ``replace``'s bytes under a name) to a fresh prefix; returns its URL."""
    prefix = f"{folder.name}-{uuid.uuid4().hex[:8]}"
    for path in sorted(folder.iterdir()):
        if names is None or path.name in names:
            s3.put(BUCKET, f"{prefix}/{path.name}", replace.get(path.name, path.read_bytes()))
    return f"s3://{BUCKET}/{prefix}/"


def test_folder_url_loads_the_same_weights_and_is_fetched_once(s3, fixtures_dir, tmp_path):
    url = upload(s3, fixtures_dir / "tiny-4x")
    local = WFVAE.from_pretrained(fixtures_dir / "tiny-4x")
    remote = WFVAE.from_pretrained(url, storage_options=s3.storage_options, cache_dir=tmp_path)
    assert remote.weights_checksum() == local.weights_checksum()
    video = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    assert torch.equal(remote.encode(video).mean, local.encode(video).mean)

    again = fetch_model(url, s3.storage_options, tmp_path)
    assert not again.downloaded
    content = (fixtures_dir / "tiny-4x" / "diffusion_pytorch_model.safetensors").read_bytes()
    assert again.sha256 == hashlib.sha256(content).hexdigest() == again.weights.parent.name
    assert again.weights.read_bytes() == content


def test_training_checkpoint_by_folder_and_by_file_url(s3, fixtures_dir, tmp_path):
    url = upload(s3, fixtures_dir / "tiny-8x")
    expected = WFVAE.from_pretrained(fixtures_dir / "tiny-8x").weights_checksum()
    for source in (url, url + "checkpoint.ckpt"):
        vae = WFVAE.from_pretrained(source, storage_options=s3.storage_options, cache_dir=tmp_path)
        assert vae.weights_checksum() == expected and vae.temporal_compression == 8


def test_replaced_weights_are_fetched_again(s3, fixtures_dir, tmp_path):
    """Same URL, new content: the listing's ETag changes, so the cache key does."""
    folder = fixtures_dir / "tiny-4x"
    url = upload(s3, folder)
    first = fetch_model(url, s3.storage_options, tmp_path)
    state = load_file(str(folder / "diffusion_pytorch_model.safetensors"))
    state["encoder.conv_out.conv.bias"] = state["encoder.conv_out.conv.bias"] + 1
    edited = tmp_path / "edited.safetensors"
    save_file(state, str(edited))
    key = url.removeprefix(f"s3://{BUCKET}/") + "diffusion_pytorch_model.safetensors"
    s3.put(BUCKET, key, edited.read_bytes())
    second = fetch_model(url, s3.storage_options, tmp_path)
    assert second.downloaded and second.sha256 != first.sha256
    vae = WFVAE.from_pretrained(url, storage_options=s3.storage_options, cache_dir=tmp_path)
    assert vae.weights_checksum() != WFVAE.from_pretrained(folder).weights_checksum()
    assert first.weights.read_bytes() == (folder / "diffusion_pytorch_model.safetensors").read_bytes()  # kept


def test_a_damaged_cache_copy_is_fetched_again(s3, fixtures_dir, tmp_path):
    url = upload(s3, fixtures_dir / "tiny-4x")
    first = fetch_model(url, s3.storage_options, tmp_path)
    with open(first.weights, "r+b") as file:
        file.truncate(1000)  # e.g. a disk that filled up under another tool
    second = fetch_model(url, s3.storage_options, tmp_path)
    assert second.downloaded and second.weights.stat().st_size > 1000
    WFVAE.from_pretrained(url, storage_options=s3.storage_options, cache_dir=tmp_path)


def test_loading_stays_strict(s3, fixtures_dir, tmp_path):
    prefix = f"mixed-{uuid.uuid4().hex[:8]}"
    s3.put(BUCKET, f"{prefix}/config.json", (fixtures_dir / "tiny-4x" / "config.json").read_bytes())
    s3.put(BUCKET, f"{prefix}/checkpoint.ckpt", (fixtures_dir / "tiny-8x" / "checkpoint.ckpt").read_bytes())
    with pytest.raises(CheckpointError, match=rf"does not match its config.json .* missing keys.*"
                                              rf"fetched from s3://{BUCKET}/{prefix}/checkpoint.ckpt"):
        WFVAE.from_pretrained(f"s3://{BUCKET}/{prefix}/", storage_options=s3.storage_options, cache_dir=tmp_path)


def test_what_is_missing_is_named(s3, fixtures_dir, tmp_path):
    options = s3.storage_options
    with pytest.raises(FileNotFoundError, match="nowhere/: not found .*config.json"):
        WFVAE.from_pretrained(f"s3://{BUCKET}/nowhere/", storage_options=options, cache_dir=tmp_path)
    weights_only = upload(s3, fixtures_dir / "tiny-4x", ["diffusion_pytorch_model.safetensors"])
    with pytest.raises(FileNotFoundError, match="no config.json"):
        WFVAE.from_pretrained(weights_only, storage_options=options, cache_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="no config.json beside it"):
        WFVAE.from_pretrained(weights_only + "diffusion_pytorch_model.safetensors", storage_options=options,
                              cache_dir=tmp_path)
    config_only = upload(s3, fixtures_dir / "tiny-4x", ["config.json"])
    with pytest.raises(FileNotFoundError, match="no weights found"):
        WFVAE.from_pretrained(config_only, storage_options=options, cache_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="not a weights file"):
        WFVAE.from_pretrained(config_only + "config.json", storage_options=options, cache_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="could not be read .*Protocol not known.* storage options"):
        WFVAE.from_pretrained("nosuchstore://bucket/model/", cache_dir=tmp_path)


def test_config_alone_is_read_without_the_weights(s3, fixtures_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("WFVAE_CACHE", str(tmp_path / "cache"))
    url = upload(s3, fixtures_dir / "tiny-8x")
    config = read_config(url, s3.storage_options)
    assert config.to_dict() == read_config(fixtures_dir / "tiny-8x").to_dict()
    assert config.temporal_compression == 8
    assert not (tmp_path / "cache").exists()


def test_processes_of_one_machine_download_once(s3, fixtures_dir, tmp_path):
    """Encoder processes starting together: one downloads, the others wait for it and reuse its copy."""
    url = upload(s3, fixtures_dir / "tiny-4x")
    code = ("import json, sys; from wfvae.remote import fetch_model; "
            "f = fetch_model(sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]); print(f.downloaded, f.sha256)")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    processes = [subprocess.Popen([sys.executable, "-c", code, url, json.dumps(s3.storage_options), str(tmp_path)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                 for _ in range(3)]
    outputs = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        outputs.append(out.split())
    assert sorted(downloaded for downloaded, _ in outputs) == ["False", "False", "True"]
    assert len({digest for _, digest in outputs}) == 1
    assert len(list((tmp_path / "blobs").iterdir())) == 2  # config and weights, nothing half-written


def test_file_urls_are_local_paths(fixtures_dir):
    vae = WFVAE.from_pretrained(f"file://{fixtures_dir / 'tiny-4x'}")
    assert vae.weights_checksum() == WFVAE.from_pretrained(fixtures_dir / "tiny-4x").weights_checksum()


def test_the_model_package_does_not_import_ray():
    code = "import sys, wfvae, wfvae.remote, wfvae.loading; assert 'ray' not in sys.modules, 'ray imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr


def test_a_download_that_does_not_match_the_listing_is_refused(s3, fixtures_dir, tmp_path):
    """A transfer is checked against what the storage listed: size, and the ETag where it is an MD5."""
    import fsspec

    from wfvae.remote import download_blob

    url = upload(s3, fixtures_dir / "tiny-4x", ["config.json"])
    fs, path = fsspec.core.url_to_fs(url + "config.json", **s3.storage_options)
    info = fs.info(path)
    (tmp_path / "blobs").mkdir()
    local, digest = download_blob(fs, info, tmp_path)
    assert local.read_bytes() == (fixtures_dir / "tiny-4x" / "config.json").read_bytes()
    size = info["size"]
    with pytest.raises(OSError, match=f"downloaded {size} bytes but the storage lists {size + 1}"):
        download_blob(fs, {**info, "size": size + 1}, tmp_path)
    with pytest.raises(OSError, match="do not match the storage's checksum"):
        download_blob(fs, {**info, "ETag": '"' + "0" * 32 + '"'}, tmp_path)
    assert sorted(p.name for p in (tmp_path / "blobs").iterdir()) == [digest]  # nothing half-written
