"""SHA-256 of a local model's files, computed once per file version per machine.

umT5-XXL's encoder is 11 GB in bfloat16 (its full checkpoint several times that): hashing it at every
encoder actor's start costs seconds to minutes (``bench/text_encoder.py`` measures this machine's rate).
So a file's digest is remembered in the cache, keyed by what changes when the file is rewritten: its
real path, device, inode, size and modification time in nanoseconds. The first actor of a node hashes;
the others, and every later start, read the memo. A file changed in place while keeping its size and
its nanosecond mtime would keep its old digest: that takes deliberately resetting the mtime.
Files fetched from object storage need none of this: ``fetch.py`` hashes them while downloading.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from wfvae.remote import default_cache_dir, write_atomically

_CHUNK = 8 << 20


def file_sha256(path: Path, cache_dir: str | Path | None = None) -> str:
    """The SHA-256 of a file's bytes, from the memo when the file has not changed since it was hashed."""
    real = Path(path).resolve()
    stat = real.stat()
    version = f"{real}\0{stat.st_dev}\0{stat.st_ino}\0{stat.st_size}\0{stat.st_mtime_ns}"
    memo_dir = (Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()) / "digests"
    memo = memo_dir / f"{hashlib.sha256(version.encode()).hexdigest()[:32]}.json"
    try:
        remembered = json.loads(memo.read_text())
        if remembered.get("version") == version:
            return remembered["sha256"]
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    digest = hashlib.sha256()
    with open(real, "rb") as source:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
    memo_dir.mkdir(parents=True, exist_ok=True)
    write_atomically(memo, json.dumps({"version": version, "sha256": digest.hexdigest()}).encode())
    return digest.hexdigest()


def files_digest(digests: dict[str, str]) -> str:
    """One digest for several files: of their names and SHA-256, sorted by name."""
    return hashlib.sha256("".join(f"{name}:{digests[name]}\n" for name in sorted(digests)).encode()).hexdigest()
