"""Local paths mean what they mean where the command was typed.

The driver, its encoder actors and their decode workers run in different processes, often
with different working directories (a Ray head started in another folder, ``ray job submit``
running the driver inside Ray's unpacked copy of ``--working-dir``). So every local path is
made absolute in the driver, before anything starts, and an output that would land inside
Ray's temporary folders (deleted by Ray later) is refused.
"""

from __future__ import annotations

import os
import re

# A Hugging Face repo id ("org/name"): what a --model that is not a local path is taken for.
_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
# Ray unpacks `ray job submit --working-dir` here and runs the driver inside it.
_RAY_PACKAGE = re.compile(r"/runtime_resources/working_dir_files/|/_ray_pkg_[0-9a-f]+(/|$)")


def has_scheme(url: str) -> bool:
    """Whether ``url`` names a filesystem other than local disk (``s3://``, ``gs://``, ``memory://``)."""
    scheme, sep, _ = url.partition("://")
    return bool(sep) and scheme not in ("file", "local")


def absolute(url: str) -> str:
    """A local path (relative, ``~``, ``file://``) made absolute; URLs of other filesystems unchanged.
    Brace ranges and glob characters are kept: they expand later, against the absolute path."""
    if has_scheme(url):
        return url
    path = url.split("://", 1)[1] if "://" in url else url
    return os.path.abspath(os.path.expanduser(path))


def absolute_model(model: str) -> str:
    """``--model``: a local folder or file becomes absolute; a Hugging Face repo id that names no
    local path stays as it is."""
    if has_scheme(model):
        return model
    local = os.path.expanduser(model.split("://", 1)[1] if "://" in model else model)
    if not os.path.exists(local) and _REPO_ID.match(model):
        return model
    return os.path.abspath(local)


def ray_temp_roots() -> list[str]:
    """Folders that Ray owns and clears (its temp dir, where sessions and unpacked packages live)."""
    roots = {os.path.join(os.environ.get("RAY_TMPDIR") or "/tmp", "ray")}
    try:
        from ray._common.utils import get_user_temp_dir

        roots.add(os.path.join(get_user_temp_dir(), "ray"))
    except ImportError:  # pragma: no cover - Ray moved it
        pass
    return sorted(os.path.realpath(root) for root in roots)


def inside_ray_temp(path: str) -> bool:
    """Whether a local absolute path lies in Ray's temporary folders (deleted when Ray cleans up)."""
    real = os.path.realpath(path)
    if _RAY_PACKAGE.search(real + "/"):
        return True
    return any(real == root or real.startswith(root + os.sep) for root in ray_temp_roots())
