"""Writing files on any fsspec storage without ever leaving a half-written file behind.

Local files are written beside their destination, fsynced, renamed into place, and their
folder fsynced, so a machine crash (not only a process crash) never leaves a commit marker
pointing at an empty file. Object stores (s3fs, gcsfs) publish an object only when its upload
completes, but s3fs still uploads what was written when the writer raises inside
``with fs.open(...)``: on error we call ``discard()`` so a failed write leaves no object at all.

Storage errors that a second try may cure (a dropped connection, a 5xx from the object store)
are retried with back-off here, so a flaky network costs a few seconds, not a re-encoded shard.
"""

from __future__ import annotations

import errno
import json
import os
import time
import uuid
from collections.abc import Callable
from typing import IO, Any, TypeVar

import fsspec
from fsspec import AbstractFileSystem

T = TypeVar("T")

RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)  # seconds before each further try of a transient failure
# Failures that say something about the request, not the network: trying again gives the same answer.
PERMANENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EEXIST, errno.ENOENT,
                    errno.ENOTDIR, errno.EISDIR, errno.EINVAL, errno.ENAMETOOLONG, errno.EFBIG}


def filesystem(url: str, storage_options: dict[str, Any] | None = None) -> tuple[AbstractFileSystem, str]:
    """(filesystem, path without protocol) for a local path or any fsspec URL."""
    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    return fs, path.rstrip("/") or path


def is_local(fs: AbstractFileSystem) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    return "file" in protocols or "local" in protocols


def is_transient(err: BaseException) -> bool:
    """A storage failure worth another try: network and server-side errors, not "no such file",
    "no permission" or "disk full"."""
    if isinstance(err, (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError,
                        NotADirectoryError)):
        return False
    if isinstance(err, (ConnectionError, TimeoutError)):
        return True
    if isinstance(err, OSError):
        return err.errno not in PERMANENT_ERRNOS
    module = type(err).__module__.split(".", 1)[0]
    return module in ("aiohttp", "botocore", "urllib3", "requests")  # the object stores' network layers


def retrying(action: Callable[[], T], what: str, delays: tuple[float, ...] = RETRY_DELAYS,
             log: Callable[[str], None] | None = None) -> T:
    """``action()``, tried again after each of ``delays`` while it fails transiently."""
    for delay in (*delays, None):
        try:
            return action()
        except Exception as err:  # noqa: BLE001 - classified below
            if delay is None or not is_transient(err):
                raise
            if log is not None:
                log(f"{what}: {type(err).__name__}: {err}; trying again in {delay:g} s")
            time.sleep(delay)
    raise AssertionError("unreachable")


def fsync_folder(path: str) -> None:
    """Make a rename or a new file in ``path`` durable (local storage)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_local(path: str, write: Callable[[IO[bytes]], None]) -> str:
    """Writes and fsyncs a temporary file beside ``path``; returns its name."""
    temporary = f"{path}.tmp-{uuid.uuid4().hex}"
    try:
        with open(temporary, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return temporary


def write_atomically(fs: AbstractFileSystem, path: str, write: Callable[[IO[bytes]], None]) -> int:
    """Run ``write(file)`` and publish ``path`` only if it returns; returns the size written.
    Transient storage errors are retried (``write`` runs again from the start)."""
    return retrying(lambda: _write_once(fs, path, write), f"writing {path}")


def _write_once(fs: AbstractFileSystem, path: str, write: Callable[[IO[bytes]], None]) -> int:
    parent = path.rsplit("/", 1)[0]
    if is_local(fs):
        os.makedirs(parent, exist_ok=True)
        temporary = _write_local(path, write)
        try:
            os.replace(temporary, path)  # atomic; refuses to replace a directory
        except BaseException:
            os.remove(temporary)
            raise
        fsync_folder(parent)
        return os.path.getsize(path)
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


def create_exclusively(fs: AbstractFileSystem, path: str, payload: bytes) -> bool:
    """Create ``path`` holding ``payload`` if nothing is there; False if something is. Atomic: of
    two writers racing, exactly one gets True, and nobody ever sees a partial file.

    Local: the content is written to a temporary file and hard-linked to ``path`` (``link(2)``
    fails with EEXIST like ``O_EXCL``, but the file appears complete). Object stores: a
    conditional put (``If-None-Match: *``: S3 since 2024, moto, MinIO; s3fs ``mode="create"``).
    """
    def once() -> bool:
        if is_local(fs):
            parent = path.rsplit("/", 1)[0]
            os.makedirs(parent, exist_ok=True)
            temporary = _write_local(path, lambda file: file.write(payload))
            try:
                os.link(temporary, path)
            except FileExistsError:
                return False
            finally:
                os.remove(temporary)
            fsync_folder(parent)
            return True
        try:
            fs.pipe_file(path, payload, mode="create")
        except FileExistsError:
            return False
        fs.invalidate_cache(path.rsplit("/", 1)[0])
        return True

    return retrying(once, f"creating {path}")


def json_bytes(data: Any, compact: bool = False) -> bytes:
    """Indented for people; ``compact`` for files of 10^5-10^6 entries that programs read (run files)."""
    if compact:
        return (json.dumps(data, separators=(",", ":"), default=str) + "\n").encode()
    return (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode()


def write_json(fs: AbstractFileSystem, path: str, data: Any, compact: bool = False) -> int:
    payload = json_bytes(data, compact)
    return write_atomically(fs, path, lambda file: file.write(payload))


def read_json(fs: AbstractFileSystem, path: str) -> Any:
    def once() -> Any:
        with fs.open(path, "rb") as file:
            return json.loads(file.read())

    return retrying(once, f"reading {path}")
