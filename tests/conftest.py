"""Session-wide fixtures: one Ray head node and one S3 server for every test that needs them."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Models fetched from (test) object storage go to a cache of this session, not the user's: set before
# the Ray head starts, so its workers inherit it.
if "WFVAE_CACHE" not in os.environ:
    os.environ["WFVAE_CACHE"] = tempfile.mkdtemp(prefix="wfvae-cache-")
    atexit.register(shutil.rmtree, os.environ["WFVAE_CACHE"], ignore_errors=True)


@pytest.fixture(scope="session")
def ray_head():
    """A real local Ray head (started once, ~10 s); this process is connected to it as a driver."""
    import ray

    from tests.support.ray_head import RayHead

    head = RayHead().start()
    ray.init(address=head.address, namespace="wfvae-latents", logging_level="warning")
    try:
        yield head
    finally:
        ray.shutdown()
        head.stop()


@pytest.fixture(scope="session")
def local_s3():
    """moto's real S3 server on 127.0.0.1, for the whole session."""
    from tests.support.s3 import LocalS3

    # Credentials come from storage_options; keep a developer's own AWS setup out of it.
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("AWS_")}
    try:
        with LocalS3() as s3:
            yield s3
    finally:
        os.environ.update(saved)
