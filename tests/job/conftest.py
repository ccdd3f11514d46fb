"""Fixtures of the job tests (their helpers are in tests/support: jobs.py, shards.py, outputs.py)."""

from __future__ import annotations

import pytest

from tests.support.shards import Shards, write_shards


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Shards:
    """3 shards x 5 samples; sample 3 of each is an mp4 cut before its index."""
    return write_shards(tmp_path_factory.mktemp("shards"), 5, shards=3, broken={3: "truncated"})
