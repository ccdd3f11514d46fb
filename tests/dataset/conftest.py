"""Outputs as the encode job writes them, made in this process without Ray (see tests/support/encoded_outputs.py)."""

from tests.support.encoded_outputs import mean_only, moments  # noqa: F401 - fixtures
