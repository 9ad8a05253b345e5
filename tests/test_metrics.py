"""Image metrics against hand-computed values and against pytorch-msssim."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.metrics import MS_SSIM_MIN_SIDE, ms_ssim, psnr, region_psnrs
from tests.conftest import natural_image


def test_psnr_known_value():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 48  # MSE = 48² / 48 = 48
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 48))
    assert psnr(a, a) == math.inf


def test_region_psnrs_split_the_error():
    a = np.zeros((2, 4, 3), np.uint8)
    b = a.copy()
    b[:, :2] = 10  # error only in the left half
    mask = np.zeros((2, 4), bool)
    mask[:, :2] = True
    full, roi, bg, notes = region_psnrs(a, b, mask)
    assert roi == pytest.approx(10 * math.log10(255**2 / 100))
    assert bg == math.inf and full == pytest.approx(10 * math.log10(255**2 / 50))
    assert notes == []


def test_empty_regions_are_nan_with_reason():
    a = natural_image(8, 8)
    _, roi, bg, notes = region_psnrs(a, a, np.zeros((8, 8), bool))
    assert math.isnan(roi) and bg == math.inf and "empty ROI" in notes[0]
    _, roi, bg, notes = region_psnrs(a, a, np.ones((8, 8), bool))
    assert math.isnan(bg) and "whole image" in notes[0]


def test_ms_ssim_matches_pytorch_msssim():
    torch = pytest.importorskip("torch")
    from pytorch_msssim import ms_ssim as reference

    a = natural_image(192, 256, seed=1)
    b = np.clip(a.astype(int) + np.random.default_rng(2).normal(0, 12, a.shape), 0, 255)
    b = b.astype(np.uint8)
    ours, why = ms_ssim(a, b)
    t = lambda x: torch.from_numpy(x).permute(2, 0, 1)[None].double()  # noqa: E731
    ref = reference(t(a), t(b), data_range=255).item()
    assert why is None and ours == pytest.approx(ref, abs=1e-5)
    assert ms_ssim(a, a)[0] == pytest.approx(1.0)


def test_ms_ssim_small_image_is_nan():
    a = natural_image(MS_SSIM_MIN_SIDE - 1, 300)
    value, why = ms_ssim(a, a)
    assert math.isnan(value) and str(MS_SSIM_MIN_SIDE) in why
