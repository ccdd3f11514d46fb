"""A text model's folder on any fsspec storage (``s3://bucket/models/umt5-xxl/``), fetched once per
machine into the cache WF-VAE's weights use (``wfvae/remote.py``), with the same guarantees.

``wfvae.remote.fetch_model`` fetches a config and one weights file; a text model is a folder of many
files (config, tokenizer files, sharded safetensors with their index), and transformers loads it from a
folder. So each file is fetched as a WF-VAE weights file is (a blob named by its SHA-256, verified
against the listing's size and MD5 ETag, under the same per-key lock), and the folder is put together as
links to the blobs:

    <cache>/blobs/<sha256>/<file name>       each file, as WF-VAE's are
    <cache>/refs/text-<key>.json             a remote folder's identity -> its files' SHA-256
    <cache>/snapshots/<content key>/<name>   links to the blobs: the folder transformers loads

``key`` comes from what the storage lists for every file (URL, size, change tokens), so a hit costs one
listing and no transfer; ``content key`` from the files' SHA-256, so two URLs of the same files share a
folder. The SHA-256 computed while downloading is kept in the ref: the identity's digests of a remote
model cost nothing after its one download.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec

# The download, the cache's locking and the storage's change tokens are WF-VAE's (private there: see the
# report of the text-encoder work for making them public).
from wfvae.remote import (default_cache_dir, download_blob, explained, full_info, identity_of, locked,
                          write_atomically)

from .files import EXPECTED, model_files


@dataclass(frozen=True)
class FetchedFolder:
    url: str  # the folder's URL, as the storage names it
    folder: Path  # the local folder to load: links to the cached files
    sha256: dict[str, str]  # file name -> SHA-256 of its bytes
    downloaded: bool  # False: found in the cache, nothing transferred


def fetch_text_model(url: str, storage_options: dict[str, Any] | None = None,
                     cache_dir: str | Path | None = None) -> FetchedFolder:
    """Local copies of a remote text model's files (see ``files.model_files`` for which)."""
    fs, folder_url, infos = _locate(url, storage_options or {})
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    for part in ("blobs", "refs", "locks", "snapshots"):
        (cache / part).mkdir(parents=True, exist_ok=True)
    identity = [identity_of(fs, infos[name]) for name in sorted(infos)]
    cacheable = all(len(part) > 2 for part in identity)  # more than URL and size: a change token
    key = "text-" + hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:32]
    ref = cache / "refs" / f"{key}.json"
    with locked(cache / "locks" / f"{key}.lock"):
        if cacheable and (digests := _cached(cache, ref, infos)) is not None:
            return FetchedFolder(folder_url, _snapshot(cache, digests), digests, downloaded=False)
        digests = {name: download_blob(fs, infos[name], cache)[1] for name in sorted(infos)}
        folder = _snapshot(cache, digests)
        if cacheable:
            write_atomically(ref, json.dumps({"url": folder_url, "identity": identity, "sha256": digests,
                                               "fetched_at": time.time()}, indent=2, default=str).encode())
    return FetchedFolder(folder_url, folder, digests, downloaded=True)


def _locate(url: str, storage_options: dict[str, Any]) -> tuple[fsspec.AbstractFileSystem, str, dict[str, dict]]:
    """(file system, folder URL, {file name: full info}) of the files to fetch."""
    try:
        fs, path = fsspec.core.url_to_fs(url, **storage_options)
        path = path.rstrip("/")
        fs.invalidate_cache(path)  # a listing cached by this process may predate new files
        if fs.info(path).get("type") != "directory":
            raise FileNotFoundError(f"{url}: not a folder (expected {EXPECTED})")
        listing = {entry["name"].rstrip("/").rsplit("/", 1)[-1]: entry
                   for entry in fs.ls(path, detail=True) if entry.get("type") != "directory"}
        names = model_files(url, listing, lambda name: fs.cat_file(listing[name]["name"]).decode())
    except (OSError, ValueError, ImportError) as err:  # missing, no access, unknown protocol, bad options
        raise explained(url, f"expected {EXPECTED}", err) from None
    wanted = [name for group in names.values() for name in group]
    return fs, fs.unstrip_protocol(path), {name: full_info(fs, listing[name]) for name in wanted}


def _cached(cache: Path, ref: Path, infos: dict[str, dict]) -> dict[str, str] | None:
    """The files' SHA-256 from a ref whose blobs are all there at the listed sizes; else None."""
    if not ref.is_file():
        return None
    try:
        digests = json.loads(ref.read_text())["sha256"]
        complete = set(digests) == set(infos) and all(
            (cache / "blobs" / digests[name] / name).stat().st_size == int(infos[name]["size"]) for name in infos)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return digests if complete else None


def _snapshot(cache: Path, digests: dict[str, str]) -> Path:
    """The folder of links to the blobs (made if absent or incomplete); named by the files' content."""
    content_key = hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()[:32]
    folder = cache / "snapshots" / content_key
    if all((folder / name).resolve() == (cache / "blobs" / digest / name).resolve() and (folder / name).is_file()
           for name, digest in digests.items()):
        return folder
    building = cache / "snapshots" / f".{content_key}.tmp-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir()
    for name, digest in digests.items():
        (building / name).symlink_to(Path("..") / ".." / "blobs" / digest / name)
    shutil.rmtree(folder, ignore_errors=True)  # incomplete: another key's lock may be building it too
    try:
        os.replace(building, folder)
    except OSError:  # another process put the same content's folder in place first
        shutil.rmtree(building, ignore_errors=True)
    return folder
