"""Finding shards and streaming their tar members.

Shards live on local disk or any fsspec filesystem (S3 through s3fs, ...). A
shard is read as a stream, never downloaded whole first. Damage is detected
precisely: Python's `tarfile` (which webdataset also uses) silently stops at a
corrupt header or at a file cut between two members, so the header reader here
records why the archive ended and anything but a proper end-of-archive block
is reported as damage.
"""

from __future__ import annotations

import os
import posixpath
import re
import tarfile
from collections.abc import Iterator, Sequence
from typing import IO

import braceexpand
import fsspec
from fsspec.core import url_to_fs

from ..output.storage import is_local
from .records import STAGE_SHARD, ErrorRecord, SampleError, describe

LIST_FILE_SUFFIXES = (".txt", ".list", ".lst")
SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")  # what a folder given as --input is taken to hold
_GLOB_CHARS = ("*", "?", "[")
_META_MEMBER = re.compile(r"__[^/]*__($|/)")  # webdataset's rule for metadata members


def list_shards(spec: str | Sequence[str], storage_options: dict | None = None) -> list[str]:
    """Expand a shard spec into a sorted, deduplicated list of shard URLs.

    A spec is any fsspec URL or local path, optionally with brace ranges
    (`shards/{000000..000999}.tar`) and glob patterns (`s3://b/shards/*.tar`). A spec
    ending in .txt/.list/.lst is a file listing one spec per line (blank lines and
    lines starting with # are skipped; relative entries are relative to the list
    file). A folder (local or on an object store) means the shards in it: its `*.tar`,
    `*.tar.gz` and `*.tgz` files. Several specs may be given as a sequence. Local paths come back absolute,
    without a scheme. Raises ValueError when nothing matches.
    """
    options = dict(storage_options or {})
    specs = [spec] if isinstance(spec, str) else list(spec)
    urls: set[str] = set()
    for one in specs:
        urls.update(_expand(one, options, allow_list_file=True))
    if not urls:
        raise ValueError(f"no shards match {spec!r}")
    return sorted(urls)


def _expand(spec: str, options: dict, allow_list_file: bool) -> list[str]:
    spec = spec.strip()
    if not spec:
        return []
    if allow_list_file and spec.lower().endswith(LIST_FILE_SUFFIXES):
        return _read_list_file(spec, options)
    patterns = list(braceexpand.braceexpand(spec))
    fs, _ = url_to_fs(patterns[0], **options)  # one filesystem per spec: a brace range of 10^6 names stays cheap
    if len(patterns) == 1 and not any(c in spec for c in _GLOB_CHARS) and fs.isdir(fs._strip_protocol(spec)):
        return _shards_in_folder(spec, fs)
    if spec.endswith("/"):
        raise ValueError(f"{spec!r} ends in '/', but there is no such folder")
    urls: list[str] = []
    for pattern in patterns:
        if any(c in pattern for c in _GLOB_CHARS):
            found = fs.glob(fs._strip_protocol(pattern), detail=True)
            urls.extend(_canonical(fs.unstrip_protocol(p), fs) for p, info in found.items() if info.get("type") == "file")
        else:
            urls.append(_canonical(pattern, fs))
    return urls


def _shards_in_folder(spec: str, fs) -> list[str]:
    """A folder means the shards in it (not in its subfolders); an empty one is an error, as an empty glob is."""
    listing = fs.ls(fs._strip_protocol(spec), detail=True)
    urls = sorted(_canonical(fs.unstrip_protocol(info["name"]), fs) for info in listing
                  if info.get("type") == "file" and info["name"].lower().endswith(SHARD_SUFFIXES))
    if not urls:
        raise ValueError(f"the folder {spec!r} holds no shards (files ending in {', '.join(SHARD_SUFFIXES)})")
    return urls


def _read_list_file(spec: str, options: dict) -> list[str]:
    with fsspec.open(spec, "rt", encoding="utf-8", **options) as f:
        lines = f.read().splitlines()
    base = spec.rsplit("/", 1)[0] if "/" in spec else "."
    urls: list[str] = []
    for line in lines:
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if "://" not in entry and not os.path.isabs(entry):
            entry = _normalize(f"{base}/{entry}")
        urls.extend(_expand(entry, options, allow_list_file=False))
    return urls


def _normalize(url: str) -> str:
    """Resolve "." and ".." in a URL's path (object stores take keys literally)."""
    if "://" in url:
        scheme, path = url.split("://", 1)
        return f"{scheme}://{posixpath.normpath(path)}"
    return os.path.normpath(url)


def _canonical(url: str, fs) -> str:
    """Local files as absolute paths without a scheme; everything else as proto://path."""
    if is_local(fs):
        path = url[len("file://") :] if url.startswith("file://") else url
        return os.path.abspath(os.path.expanduser(path))
    return url


def open_shard(url: str, storage_options: dict | None = None, block_size: int = 8 * 2**20) -> IO[bytes]:
    """Open a shard for streaming reads (ranged requests of `block_size` on object stores)."""
    fs, path = url_to_fs(url, **(storage_options or {}))
    if is_local(fs):
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    return fs.open(path, "rb", block_size=block_size)


def _damage(error_type: str, message: str, member: str | None) -> SampleError:
    """A damaged tar, as the one error type: its key is the sample of the member being read, or None
    when the damage was at (or instead of) a header."""
    return SampleError(ErrorRecord(STAGE_SHARD, error_type, message, key=key_of(member) if member else None))


def key_of(name: str) -> str:
    """The sample key of a tar member, by webdataset's rule (imported here: see ``samples._samples``)."""
    from webdataset.tariterators import base_plus_ext

    key, _ = base_plus_ext(name)
    return key if key is not None else name


class _WatchedTarInfo(tarfile.TarInfo):
    """Remembers on the TarFile why reading a header failed (tarfile itself forgets)."""

    @classmethod
    def fromtarfile(cls, tf):  # noqa: ANN001 - tarfile's signature
        try:
            return super().fromtarfile(tf)
        except tarfile.HeaderError as exc:
            tf.header_error = exc
            raise


def tar_members(stream: IO[bytes], read_data: bool = True) -> Iterator[tuple[str, bytes]]:
    """Yield (name, data) for each regular file of a tar stream (.tar, .tar.gz, ...).

    Ends quietly only at a proper end-of-archive block; otherwise raises SampleError (stage
    "shard") after yielding every member that was read whole. Metadata members named
    `__*__` are skipped, as webdataset does. With `read_data=False` (a seekable stream) the
    members' data are skipped by seeking and come as b"": the same members and damage, from
    the headers alone (a member cut short is then found at the next header, which places
    the damage at no sample; the samples read before it are the same).
    """
    try:
        tf = tarfile.open(fileobj=stream, mode="r|*" if read_data else "r:*", tarinfo=_WatchedTarInfo)
    except Exception as exc:  # noqa: BLE001 - any failure here means an unreadable shard
        raise _damage("CorruptShard", f"not a readable tar stream: {describe(exc)}", None) from exc
    # Opening reads the first header already: for a valid empty archive (0 members) it met the
    # end-of-archive block there, and that must not be forgotten.
    if not hasattr(tf, "header_error"):
        tf.header_error = None
    offset = 0
    while True:
        try:
            info = tf.next()
        except Exception as exc:  # noqa: BLE001
            raise _damage(_damage_type(exc), f"reading the header at byte {tf.offset}: {describe(exc)}", None) from exc
        if info is None:
            break
        offset = info.offset
        if not info.isreg():
            continue
        name = info.name
        if _META_MEMBER.match(name):
            continue  # tarfile skips the unread data when it reads the next header
        try:
            data = tf.extractfile(info).read() if read_data else b""
        except Exception as exc:  # noqa: BLE001
            raise _damage(_damage_type(exc), f"reading {name!r} ({info.size} bytes): {describe(exc)}", name) from exc
        tf.members = []  # tarfile keeps every TarInfo otherwise
        yield name, data
    error = tf.header_error
    if isinstance(error, tarfile.EOFHeaderError):
        return  # the end-of-archive block: a complete shard
    if isinstance(error, tarfile.InvalidHeaderError):
        raise _damage("CorruptShard", f"invalid tar header at byte {tf.offset}: {error}", None)
    raise _damage(
        "TruncatedShard",
        f"the tar ends at byte {tf.offset} without an end-of-archive block (last member at byte {offset})",
        None,
    )


def _damage_type(exc: BaseException) -> str:
    text = str(exc).lower()
    if isinstance(exc, EOFError) or "unexpected end" in text or "end of data" in text or "truncated" in text:
        return "TruncatedShard"
    if isinstance(exc, (tarfile.TarError, ValueError)) or "zlib" in text or "header" in text:
        return "CorruptShard"
    return type(exc).__name__

