"""Weights on any fsspec storage (``s3://``, ``gs://``, ``az://``, ``hf://`` ...), fetched once per
machine into a local cache named by content checksum.

    <cache>/blobs/<sha256>/<file name>   a downloaded file, in a folder named by its SHA-256
    <cache>/refs/<key>.json              a remote model's identity -> its blobs
    <cache>/locks/<key>.lock             held while one process downloads

The cache key must be known *before* downloading, so it comes from what the storage lists:
the URLs of config.json and the weights with their sizes and change tokens (S3 ETag and
version, GCS md5/crc32c/generation, modification time). A hit costs two metadata requests.
A miss downloads under an exclusive file lock, so the encoder processes of one node wait for
the first instead of each downloading; the content's SHA-256 is computed while streaming and
names the blob, the size must equal the listing's, and an ETag that is a plain MD5 (S3
single-part uploads) must equal the content's MD5. Storage that lists no change token gets no
cached identity: the files are downloaded again each time (and still de-duplicated by content).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import fsspec

WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "model.safetensors")
WEIGHT_SUFFIXES = (".safetensors", ".ckpt")
# Fields of fsspec's info() that change when an object's content changes, across implementations.
_CHANGE_TOKENS = ("ETag", "etag", "VersionId", "version_id", "md5Hash", "crc32c", "generation", "content_md5",
                  "mtime", "LastModified", "last_modified", "last_commit", "blob_id", "lfs")
_PLAIN_MD5 = re.compile(r"^[0-9a-f]{32}$")
_CHUNK = 8 << 20


def default_cache_dir() -> Path:
    """``$WFVAE_CACHE``, else ``$XDG_CACHE_HOME/wfvae-latents``, else ``~/.cache/wfvae-latents``."""
    if os.environ.get("WFVAE_CACHE"):
        return Path(os.environ["WFVAE_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "wfvae-latents"


def is_remote(source: Any) -> bool:
    """A URL with a protocol other than the local file system (``file://`` paths are local)."""
    if not isinstance(source, str) or "://" not in source:
        return False
    protocol = fsspec.core.split_protocol(source.split("::")[-1])[0]
    return protocol not in (None, "file", "local") or "::" in source


def local_path(source: str) -> str:
    """``file:///x`` -> ``/x``; anything else unchanged."""
    return source[len("file://"):] if isinstance(source, str) and source.startswith("file://") else source


@dataclass(frozen=True)
class FetchedModel:
    url: str  # the weights' URL
    config: Path  # local copy of config.json
    weights: Path  # local copy of the weights file
    sha256: str  # of the weights file's bytes
    downloaded: bool  # False: found in the cache without transferring the files


def fetch_model(url: str, storage_options: dict[str, Any] | None = None,
                cache_dir: str | Path | None = None) -> FetchedModel:
    """Local copies of a remote model's config.json and weights: a folder URL holding config.json
    and ``diffusion_pytorch_model.safetensors`` (or one ``*.ckpt``), or the URL of a weights file
    with config.json beside it."""
    fs, config_info, weights_info = _locate(url, storage_options or {})
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    for folder in ("blobs", "refs", "locks"):
        (cache / folder).mkdir(parents=True, exist_ok=True)
    identity = [identity_of(fs, config_info), identity_of(fs, weights_info)]
    cacheable = all(len(part) > 2 for part in identity)  # more than name and size
    key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:32]
    weights_url = fs.unstrip_protocol(weights_info["name"])
    with locked(cache / "locks" / f"{key}.lock"):
        ref = cache / "refs" / f"{key}.json"
        if cacheable and (hit := _cached(cache, ref, config_info, weights_info)) is not None:
            config, weights, digest = hit
            return FetchedModel(weights_url, config, weights, digest, downloaded=False)
        config, _ = download_blob(fs, config_info, cache)
        weights, digest = download_blob(fs, weights_info, cache)
        if cacheable:
            write_atomically(ref, json.dumps({
                "url": weights_url, "identity": identity, "sha256": digest, "fetched_at": time.time(),
                "config": str(config.relative_to(cache)), "weights": str(weights.relative_to(cache))},
                indent=2, default=str).encode())
    return FetchedModel(weights_url, config, weights, digest, downloaded=True)


def open_remote_weights(url: str, storage_options: dict[str, Any] | None = None) -> tuple[str, int, Any]:
    """(URL, size, an open binary file) of a remote model's weights, for reading their header in place."""
    fs, _, weights_info = _locate(url, storage_options or {})
    return fs.unstrip_protocol(weights_info["name"]), int(weights_info["size"]), fs.open(weights_info["name"], "rb")


def read_remote_config(url: str, storage_options: dict[str, Any] | None = None) -> tuple[str, bytes]:
    """(URL, bytes) of a remote model's config.json alone: enough to check settings before anything
    downloads the weights."""
    fs, config_info, _ = _locate(url, storage_options or {})
    return fs.unstrip_protocol(config_info["name"]), fs.cat_file(config_info["name"])


# -- finding the files -------------------------------------------------------------------

def _locate(url: str, storage_options: dict[str, Any]) -> tuple[fsspec.AbstractFileSystem, dict, dict]:
    expected = ("expected a folder holding config.json and diffusion_pytorch_model.safetensors (or one *.ckpt), "
                "or the URL of a *.safetensors / *.ckpt file with config.json beside it")
    try:
        fs, path = fsspec.core.url_to_fs(url, **storage_options)
        path = path.rstrip("/")
        fs.invalidate_cache(path)  # a listing cached by this process may predate new weights
        info = fs.info(path)
        if info.get("type") == "directory":
            listing = {entry["name"].rstrip("/").rsplit("/", 1)[-1]: entry
                       for entry in fs.ls(path, detail=True) if entry.get("type") != "directory"}
            weights = _pick_weights(url, listing, expected)
            config = listing.get("config.json")
            if config is None:
                raise FileNotFoundError(f"{url}: no config.json ({expected})")
            return fs, full_info(fs, config), full_info(fs, weights)
        if not info["name"].endswith(WEIGHT_SUFFIXES):
            raise FileNotFoundError(f"{url}: not a weights file ({expected})")
        parent = info["name"].rstrip("/").rsplit("/", 1)[0]
        try:
            config = fs.info(f"{parent}/config.json")
        except FileNotFoundError:
            raise FileNotFoundError(f"{url}: no config.json beside it ({expected})") from None
        return fs, config, info
    except FileNotFoundError as err:
        raise explained(url, expected, err) from None
    except (OSError, ValueError, ImportError) as err:  # no access, unknown protocol, bad options
        raise explained(url, expected, err) from None


def explained(url: str, expected: str, err: BaseException) -> FileNotFoundError:
    """A failure to read a model at ``url``, as the one error that names it and says what is expected there."""
    if isinstance(err, FileNotFoundError):
        return err if str(err).startswith(url) else FileNotFoundError(f"{url}: not found ({expected})")
    return FileNotFoundError(f"{url}: could not be read ({type(err).__name__}: {err}); check the URL and the "
                             "storage options (credentials, endpoint)")


def _pick_weights(url: str, listing: dict[str, dict], expected: str) -> dict:
    for name in WEIGHT_NAMES:
        if name in listing:
            return listing[name]
    ckpts = sorted(name for name in listing if name.endswith(".ckpt"))
    if len(ckpts) == 1:
        return listing[ckpts[0]]
    if ckpts:
        raise FileNotFoundError(f"{url}: several checkpoints ({', '.join(ckpts)}); pass the URL of the one to load")
    raise FileNotFoundError(f"{url}: no weights found ({expected})")


def full_info(fs: fsspec.AbstractFileSystem, entry: dict) -> dict:
    """Listings may omit change tokens that info() has (and vice versa): use both."""
    if any(entry.get(token) for token in _CHANGE_TOKENS):
        return entry
    return {**entry, **fs.info(entry["name"])}


def identity_of(fs: fsspec.AbstractFileSystem, info: dict) -> dict:
    """What the storage says about a file without reading it; equal identities mean equal contents."""
    found = {"url": fs.unstrip_protocol(info["name"]), "size": int(info["size"])}
    found.update({token: str(info[token]) for token in _CHANGE_TOKENS if info.get(token) not in (None, "")})
    return found


# -- the cache ---------------------------------------------------------------------------

def _cached(cache: Path, ref: Path, config_info: dict, weights_info: dict) -> tuple[Path, Path, str] | None:
    if not ref.is_file():
        return None
    try:
        data = json.loads(ref.read_text())
        config, weights = cache / data["config"], cache / data["weights"]
        sizes_match = config.stat().st_size == int(config_info["size"]) and \
            weights.stat().st_size == int(weights_info["size"])
    except (OSError, ValueError, KeyError):
        return None
    return (config, weights, data["sha256"]) if sizes_match else None


def download_blob(fs: fsspec.AbstractFileSystem, info: dict, cache: Path) -> tuple[Path, str]:
    """Stream a file into the cache; returns (local path, SHA-256). Verified against the listing."""
    url, name = fs.unstrip_protocol(info["name"]), info["name"].rstrip("/").rsplit("/", 1)[-1]
    sha256, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    handle, temporary = tempfile.mkstemp(dir=cache / "blobs", prefix=".download-")
    try:
        with os.fdopen(handle, "wb") as out, fs.open(info["name"], "rb") as source:
            while chunk := source.read(_CHUNK):
                sha256.update(chunk)
                md5.update(chunk)
                out.write(chunk)
                size += len(chunk)
        if size != int(info["size"]):
            raise OSError(f"{url}: downloaded {size} bytes but the storage lists {info['size']} (changed while "
                          "downloading, or a broken transfer); try again")
        etag = str(info.get("ETag") or info.get("etag") or "").strip('"').lower()
        if _PLAIN_MD5.match(etag) and md5.hexdigest() != etag:
            raise OSError(f"{url}: the downloaded bytes do not match the storage's checksum (ETag MD5 {etag}, "
                          f"got {md5.hexdigest()}); try again")
        digest = sha256.hexdigest()
        folder = cache / "blobs" / digest
        folder.mkdir(exist_ok=True)
        os.replace(temporary, folder / name)
        return folder / name, digest
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_bytes(data)
    os.replace(temporary, path)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock between processes of this machine; released by the kernel if the holder dies."""
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
