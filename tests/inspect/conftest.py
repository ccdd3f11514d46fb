"""Outputs of the real job, shared with tests/dataset (see tests/support/encoded_outputs.py)."""

from tests.support.encoded_outputs import mean_only, moments  # noqa: F401 - fixtures
