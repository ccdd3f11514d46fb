"""Finding shards and streaming their tar members.

Shards live on local disk or any fsspec filesystem (S3 through s3fs, ...). A
shard is read as a stream, never downloaded whole first. Damage is detected
precisely: Python's `tarfile` (which webdataset also uses) silently stops at a
corrupt header or at a file cut between two members, so the header reader here
records why the archive ended and anything but a proper end-of-archive block
is reported as damage.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO

import braceexpand
import fsspec
from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs

from ..output.storage import is_local
from .records import STAGE_SHARD, ErrorRecord, SampleError, describe

LIST_FILE_SUFFIXES = (".txt", ".list", ".lst")
SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")  # what a folder given as --input is taken to hold
_GLOB = re.compile(r"[*?[]")  # what makes a name a glob pattern
_META_MEMBER = re.compile(r"__[^/]*__($|/)")  # webdataset's rule for metadata members
# HTTP has no folder listing: its shards are taken as named, and a missing one fails when it is read.
UNLISTED_PROTOCOLS = ("http", "https")
INPUT_FORMS = (f"an input is a shard file, a folder of shards ({', '.join(SHARD_SUFFIXES)}), a brace range "
               f"(part-{{00000..00999}}.tar), a glob (*.tar) or a list file ({', '.join(LIST_FILE_SUFFIXES)}), "
               "local or on object storage (s3://...)")
SHOWN_MISSING = 5  # missing members named in a refusal


@dataclass(frozen=True)
class ShardList:
    """The shards an input names, and what it names that does not exist."""

    urls: list[str]
    """Sorted, without repeats."""
    missing: list[str]
    """Members of its brace ranges and list files (names, globs, folders) that give no shard: empty unless
    the caller allowed them (`list_shards(allow_missing=True)`)."""


def list_shards(spec: str | Sequence[str], storage_options: dict | None = None,
                allow_missing: bool = False) -> ShardList:
    """Expand a shard spec into its shards, each checked to exist before anything starts.

    A spec is any fsspec URL or local path, optionally with brace ranges
    (`shards/{000000..000999}.tar`) and glob patterns (`s3://b/shards/*.tar`). A spec
    ending in .txt/.list/.lst is a file listing one spec per line (blank lines and
    lines starting with # are skipped; relative entries are relative to the list
    file). A folder (local or on an object store) means the shards in it: its `*.tar`,
    `*.tar.gz` and `*.tgz` files. Several specs may be given as a sequence. Local paths come back absolute,
    without a scheme.

    Every name, glob and folder the spec holds (its members) must give a shard: raises ValueError naming
    what is missing, or, with `allow_missing`, lists it in `ShardList.missing` (nothing at all is always
    refused). Existence comes from one listing of each folder the members are in (a single member: one
    look at it), never a request per shard: on object storage ~1 request per 1,000 names.
    """
    specs = [spec] if isinstance(spec, str) else list(spec)
    folders = _Folders(dict(storage_options or {}))
    members = [member for one in specs for member in _members(one.strip(), folders)]
    if not members:
        raise ValueError(f"no shards: {spec!r} names none; {INPUT_FORMS}")
    folders.resolve(members)
    urls = sorted({url for member in members for url in member.urls})
    missing = [member for member in members if not member.urls]
    if len(members) == 1 and missing:
        raise ValueError(f"{missing[0].why()}; {INPUT_FORMS}")
    if missing and (not allow_missing or not urls):
        names = ", ".join(repr(m.url) for m in missing[:SHOWN_MISSING])
        more = ", ..." if len(missing) > SHOWN_MISSING else ""
        looked = f"looked for in {folders.looked} listing(s) of their folders"
        if not urls:
            raise ValueError(f"no shards: none of the {len(members)} shards {spec!r} names exist ({looked}): "
                             f"{names}{more}")
        raise ValueError(f"{len(missing)} of the {len(members)} shards {spec!r} names do not exist ({looked}): "
                         f"{names}{more}; fix the input, or allow missing shards to go on without them")
    return ShardList(urls, [m.url for m in missing])


@dataclass(frozen=True)
class _Store:
    """A filesystem that members are on, with what every member would otherwise ask of it again."""

    fs: AbstractFileSystem
    local: bool
    listable: bool
    """It lists folders (HTTP does not)."""

    def path(self, url: str) -> str:
        """A member's path as the filesystem names it, without a trailing '/'."""
        return (url.rstrip("/") or "/") if self.local else self.fs._strip_protocol(url).rstrip("/")

    def canonical(self, url: str) -> str:
        """Local paths absolute and without a scheme (a folder's trailing '/' kept); other URLs as given."""
        if not self.local:
            return url
        path = url[len("file://") :] if url.startswith("file://") else url
        absolute = os.path.abspath(os.path.expanduser(path) if path.startswith("~") else path)
        return absolute + "/" if path.endswith("/") and absolute != "/" else absolute

    def join(self, folder: str, name: str) -> str:
        """The path of `name` in `folder` ("" is the root: a local path's, or a bucket's place)."""
        return f"{folder}/{name}" if folder or self.local else name


@dataclass
class _Member:
    """A name, glob or folder an input holds, and the shards it gives."""

    url: str
    store: _Store
    glob: bool
    urls: list[str] = field(default_factory=list)
    kind: str = "nothing"
    """What was found: "file", "folder", "glob" or "nothing"."""

    def why(self) -> str:
        """Why a member gives no shard, in words."""
        if self.kind == "glob":
            return f"no shards match {self.url!r}: the glob lists no files"
        if self.kind == "folder":
            return f"the folder {self.url!r} holds no shards (files ending in {', '.join(SHARD_SUFFIXES)})"
        if self.url.endswith("/"):
            return f"{self.url!r} ends in '/', but there is no such folder"
        return f"no shards at {self.url!r}: no such file or folder"


def _members(spec: str, folders: _Folders) -> list[_Member]:
    """A spec's members: a list file's entries or the names of its brace ranges."""
    if not spec:
        return []
    if spec.lower().endswith(LIST_FILE_SUFFIXES):
        return [member for entry in _read_list_file(spec, folders.options) for member in _expanded(entry, folders)]
    return _expanded(spec, folders)


def _expanded(spec: str, folders: _Folders) -> list[_Member]:
    patterns = list(braceexpand.braceexpand(spec))
    store = folders.store(patterns[0])  # one filesystem per spec: a brace range of 10^6 names stays cheap
    globbed = _GLOB.search(spec) is not None
    return [_Member(store.canonical(p), store, globbed and _GLOB.search(p) is not None) for p in patterns]


def _read_list_file(spec: str, options: dict) -> list[str]:
    try:
        with fsspec.open(spec, "rt", encoding="utf-8", **options) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise ValueError(f"the list file {spec!r} does not exist; {INPUT_FORMS}") from None
    base = spec.rsplit("/", 1)[0] if "/" in spec else "."
    entries: list[str] = []
    for line in lines:
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        entries.append(entry if "://" in entry or os.path.isabs(entry) else _normalize(f"{base}/{entry}"))
    return entries


class _Folders:
    """What exists, from one look at each folder the members are in (kept for the call)."""

    def __init__(self, options: dict):
        self.options = options
        self.looked = 0
        """Listings and single looks made."""
        self._stores: dict[str, _Store] = {}
        self._listings: dict[tuple[int, str], dict[str, bool]] = {}

    def store(self, url: str) -> _Store:
        protocol = url.split("://", 1)[0] if "://" in url else "file"
        if protocol not in self._stores:
            fs = url_to_fs(url, **self.options)[0]
            protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
            self._stores[protocol] = _Store(fs, is_local(fs), not set(protocols) & set(UNLISTED_PROTOCOLS))
        return self._stores[protocol]

    def resolve(self, members: list[_Member]) -> None:
        """Give each member the shards it gives: globs by globbing, names by the folder they are in."""
        by_folder: dict[tuple[int, str], list[tuple[_Member, str]]] = {}
        for member in members:
            store = member.store
            if member.glob:
                member.kind = "glob"
                folder, _, pattern = store.path(member.url).rpartition("/")
                if store.local and not _GLOB.search(folder):  # one listing of the folder, no stat per file
                    paths = [f"{folder}/{name}" for name, is_folder in sorted(self.listing(store, folder).items())
                             if not is_folder and fnmatch.fnmatchcase(name, pattern)]
                else:
                    found = store.fs.glob(store.fs._strip_protocol(member.url), detail=True)
                    paths = [path for path, info in found.items() if info.get("type") == "file"]
                member.urls = [store.canonical(store.fs.unstrip_protocol(path)) for path in paths]
            elif not store.listable:
                member.kind, member.urls = "file", [member.url]
            else:
                folder, _, name = store.path(member.url).rpartition("/")
                by_folder.setdefault((id(store), folder), []).append((member, name))
        for (_, folder), named in by_folder.items():
            store = named[0][0].store
            kinds = self._kinds(store, folder, [name for _, name in named])
            for member, name in named:
                is_folder = kinds.get(name)
                if is_folder is None or (member.url.endswith("/") and not is_folder):
                    continue
                if is_folder:
                    base = member.url.rstrip("/")
                    member.kind = "folder"
                    member.urls = [f"{base}/{entry}" for entry, sub in self.listing(store, store.path(base)).items()
                                   if not sub and entry.lower().endswith(SHARD_SUFFIXES)]
                else:
                    member.kind, member.urls = "file", [member.url]

    def _kinds(self, store: _Store, folder: str, names: list[str]) -> dict[str, bool]:
        """Name -> is a folder, for the names that exist: one look at a lone name, else one listing."""
        if len(names) > 1:
            return self.listing(store, folder)
        self.looked += 1
        try:
            info = store.fs.info(store.join(folder, names[0]))
        except FileNotFoundError:
            return {}
        return {names[0]: info.get("type") == "directory"}

    def listing(self, store: _Store, folder: str) -> dict[str, bool]:
        """Name -> is a folder, for every entry of a folder ({} if there is no such folder)."""
        key = (id(store), folder)
        if key not in self._listings:
            self.looked += 1
            self._listings[key] = _list_folder(store, folder)
        return self._listings[key]


def _list_folder(store: _Store, folder: str) -> dict[str, bool]:
    if store.local:  # names and types from the directory itself, without a stat per file
        try:
            with os.scandir(folder or "/") as entries:
                return {entry.name: entry.is_dir() for entry in entries}
        except (FileNotFoundError, NotADirectoryError):
            return {}
    try:
        infos = store.fs.ls(folder, detail=True)
    except FileNotFoundError:
        return {}
    return {posixpath.basename(info["name"].rstrip("/")): info.get("type") == "directory" for info in infos}


def _normalize(url: str) -> str:
    """Resolve "." and ".." in a URL's path (object stores take keys literally)."""
    if "://" in url:
        scheme, path = url.split("://", 1)
        return f"{scheme}://{posixpath.normpath(path)}"
    return os.path.normpath(url)


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

