"""PSNR on frames whose PSNR is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.inspect import format_psnr, psnr


@pytest.mark.parametrize("offset", [1, 2, 5, 16, 100])
def test_a_constant_offset_d_gives_20_log10_of_255_over_d(offset):
    frames = np.random.default_rng(0).integers(0, 150, size=(5, 16, 24, 3), dtype=np.uint8)
    assert psnr(frames, frames + np.uint8(offset)) == pytest.approx(20 * math.log10(255 / offset), abs=1e-9)


def test_known_mean_squared_error():
    reference = np.full((2, 8, 8, 3), 100, np.uint8)
    test = reference.copy()
    test[0] = 110  # half the values off by 10: MSE 50
    assert psnr(reference, test) == pytest.approx(10 * math.log10(255**2 / 50), abs=1e-9)
    assert psnr(test, reference) == psnr(reference, test)
    assert psnr(reference / 255.0, test / 255.0, peak=1.0) == pytest.approx(psnr(reference, test))


def test_identical_frames_give_infinity():
    frames = np.zeros((3, 4, 4, 3), np.uint8)
    assert psnr(frames, frames) == math.inf
    assert format_psnr(math.inf) == "inf dB (identical)" and format_psnr(31.234) == "31.23 dB"


def test_uint8_values_do_not_wrap():
    assert psnr(np.array([0], np.uint8), np.array([255], np.uint8)) == pytest.approx(0.0)


def test_shapes_must_match():
    with pytest.raises(ValueError, match="one shape"):
        psnr(np.zeros((2, 4, 4, 3)), np.zeros((3, 4, 4, 3)))
