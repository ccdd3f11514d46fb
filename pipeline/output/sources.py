"""A source tar's identity: a short token that changes when its content is replaced under its name.

Object stores: size and ETag (a new upload gets a new ETag); local and other file systems: size
and modification time. Tokens of many shards come from listings of their folders, never from
one request per shard: a folder's listing returns every file's size and ETag or mtime (on S3,
one request per 1,000 names), so a dataset of 10^6 shards costs ~10^3 requests.
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any

from .storage import filesystem, is_local

QUOTE = '"'  # S3 quotes its ETags
_VERSION_KEYS = ("ETag", "etag", "md5Hash", "VersionId", "generation", "mtime", "LastModified", "last_modified",
                 "updated", "created")


def token_of(info: dict[str, Any]) -> str:
    """A listing's (or ``fs.info``'s) entry of a file -> its token."""
    version = next((info[key] for key in _VERSION_KEYS if info.get(key) not in (None, "")), "")
    return f"{info.get('size')}:{str(version).strip(QUOTE)}"


def _local_token(stat: os.stat_result) -> str:
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def source_tokens(urls: list[str], storage_options: dict[str, Any] | None = None) -> dict[str, str | None]:
    """Each shard URL's token (None where the listing does not hold it), from one listing per folder."""
    by_folder: dict[str, list[str]] = defaultdict(list)
    for url in urls:
        by_folder[url.rsplit("/", 1)[0] if "/" in url else "."].append(url)
    tokens: dict[str, str | None] = {}
    for folder, members in by_folder.items():
        listed = _list_folder(folder, storage_options)
        for url in members:
            tokens[url] = listed.get(url.rsplit("/", 1)[-1])
    return tokens


def _list_folder(folder: str, storage_options: dict[str, Any] | None) -> dict[str, str]:
    """Name -> token of every file in a folder (one listing); nothing for a folder that cannot be listed (gone,
    no access, a web server that lists nothing): its shards' sources are not checked, and reading them is the
    run's to find out."""
    fs, path = filesystem(folder, storage_options)
    if is_local(fs):
        try:
            with os.scandir(path) as entries:
                return {entry.name: _local_token(entry.stat()) for entry in entries if entry.is_file()}
        except OSError:
            return {}
    try:
        listing = fs.ls(path, detail=True, refresh=True)
    except Exception:  # noqa: BLE001 - every protocol fails in its own way (aiohttp, botocore, OSError)
        return {}
    return {info["name"].rsplit("/", 1)[-1]: token_of(info) for info in listing if info.get("type") == "file"}


def source_token(url: str, storage_options: dict[str, Any] | None = None) -> str | None:
    """One shard's token (one request): for the shard an encoder has just encoded."""
    fs, path = filesystem(url, storage_options)
    try:
        if is_local(fs):
            return _local_token(os.stat(path))
        return token_of(fs.info(path))
    except FileNotFoundError:
        return None
