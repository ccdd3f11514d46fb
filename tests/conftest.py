"""Session-wide fixtures: one Ray head node for every test that needs Ray."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


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
