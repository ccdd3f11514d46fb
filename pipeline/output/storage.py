"""Writing files on any fsspec storage without ever leaving a half-written file behind.

Local files are written beside their destination and renamed into place. Object stores
(s3fs, gcsfs) publish an object only when its upload completes, but s3fs still uploads
what was written when the writer raises inside ``with fs.open(...)``: on error we call
``discard()`` so a failed write leaves no object at all.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from typing import IO, Any

import fsspec
from fsspec import AbstractFileSystem


def filesystem(url: str, storage_options: dict[str, Any] | None = None) -> tuple[AbstractFileSystem, str]:
    """(filesystem, path without protocol) for a local path or any fsspec URL."""
    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    return fs, path.rstrip("/") or path


def is_local(fs: AbstractFileSystem) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    return "file" in protocols or "local" in protocols


def write_atomically(fs: AbstractFileSystem, path: str, write: Callable[[IO[bytes]], None]) -> int:
    """Run ``write(file)`` and publish ``path`` only if it returns; returns the size written."""
    parent = path.rsplit("/", 1)[0]
    if is_local(fs):
        fs.makedirs(parent, exist_ok=True)
        temporary = f"{path}.tmp-{uuid.uuid4().hex}"
        try:
            with fs.open(temporary, "wb") as file:
                write(file)
            os.replace(temporary, path)  # atomic; refuses to replace a directory
        except BaseException:
            if fs.exists(temporary):
                fs.rm(temporary)
            raise
        return fs.size(path)
    file = fs.open(path, "wb")
    try:
        write(file)
    except BaseException:
        discard = getattr(file, "discard", None)
        if discard is not None:
            discard()
            file.closed = True  # nothing left to flush; keeps __del__ from trying
        else:  # pragma: no cover - filesystems without discard publish on close; remove it again
            file.close()
            fs.rm(path)
        raise
    file.close()
    return fs.size(path)


def write_json(fs: AbstractFileSystem, path: str, data: Any) -> int:
    payload = (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode()
    return write_atomically(fs, path, lambda file: file.write(payload))


def read_json(fs: AbstractFileSystem, path: str) -> Any:
    with fs.open(path, "rb") as file:
        return json.loads(file.read())
