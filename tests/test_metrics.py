"""Image metrics against hand-computed values, pytorch-msssim and a float64 reference."""

from __future__ import annotations

import io
import json
import math
import warnings

import numpy as np
import pytest
from PIL import Image

from bench.metrics import (
    MS_SSIM_MIN_SIDE,
    MS_SSIM_WEIGHTS,
    PSNR_CAP_DB,
    capped_psnr,
    ms_ssim,
    psnr,
    region_psnrs,
)
from tests.conftest import natural_image


def test_psnr_known_value():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 48  # MSE = 48² / 48 = 48
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 48))
    assert psnr(a, a) == math.inf


def test_capped_psnr_is_libaom_cap():
    assert PSNR_CAP_DB == 100.0
    assert capped_psnr(math.inf) == 100.0 and capped_psnr(123.4) == 100.0
    assert capped_psnr(42.5) == 42.5 and math.isnan(capped_psnr(math.nan))


def test_region_psnrs_split_the_error():
    a = np.zeros((2, 4, 3), np.uint8)
    b = a.copy()
    b[:, :2] = 10  # error only in the left half
    mask = np.zeros((2, 4), bool)
    mask[:, :2] = True
    full, roi, bg, notes = region_psnrs(a, b, mask)
    assert roi == pytest.approx(10 * math.log10(255**2 / 100))
    assert bg == math.inf and full == pytest.approx(10 * math.log10(255**2 / 50))
    assert notes == ["identical pixels: BG-PSNR +inf (means count 100 dB)"]
    b[:, 2:] = 1  # now the background differs too: no note
    assert region_psnrs(a, b, mask)[3] == []


def test_empty_regions_are_nan_with_reason():
    a = natural_image(8, 8)
    _, roi, bg, notes = region_psnrs(a, a, np.zeros((8, 8), bool))
    assert math.isnan(roi) and bg == math.inf and "empty ROI" in notes[0]
    assert notes[1] == "identical pixels: PSNR, BG-PSNR +inf (means count 100 dB)"
    _, roi, bg, notes = region_psnrs(a, a, np.ones((8, 8), bool))
    assert math.isnan(bg) and "whole image" in notes[0]


# ---------------------------------------------------------------------------- MS-SSIM
def _exact_window(torch):
    """The float64 Gaussian (σ 1.5, 11 taps) in pytorch-msssim's (C, 1, 1, 11) layout.

    pytorch-msssim builds its default window in float32 (its sum is 1 − 3.1e-8), which on
    its own moves MS-SSIM by up to 5e-6 on real JPEG pairs; the exact window compares the
    two implementations, not their windows.
    """
    x = torch.arange(11, dtype=torch.float64) - 5
    g = torch.exp(-(x**2) / (2 * 1.5**2))
    return (g / g.sum()).view(1, 1, 1, 11).repeat(3, 1, 1, 1)


def _reference(torch, a, b):
    from pytorch_msssim import ms_ssim as reference

    t = lambda x: torch.from_numpy(np.array(x)).permute(2, 0, 1)[None].double()  # noqa: E731
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # float64 grouped convolutions crawl on a loaded machine
    try:
        return reference(t(a), t(b), data_range=255, win=_exact_window(torch)).item()
    finally:
        torch.set_num_threads(threads)


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        return np.asarray(im.convert("RGB"))


def _real_images(coco_root, even: bool, count: int) -> list[np.ndarray]:
    """Shared val2017 images whose sides are (even) / are not (odd) multiples of 16."""
    doc = json.loads((coco_root / "annotations" / "instances_val2017.json").read_text())
    out = []
    for info in sorted(doc["images"], key=lambda i: i["id"]):
        if (info["width"] % 16 == 0 and info["height"] % 16 == 0) == even:
            with Image.open(coco_root / "val2017" / info["file_name"]) as im:
                out.append(np.asarray(im.convert("RGB")))
        if len(out) == count:
            return out
    pytest.skip("not enough such images in the shared subset")


def test_ms_ssim_matches_pytorch_msssim():
    torch = pytest.importorskip("torch")
    a = natural_image(192, 256, seed=1)
    b = np.clip(a.astype(int) + np.random.default_rng(2).normal(0, 12, a.shape), 0, 255)
    b = b.astype(np.uint8)
    ours, why = ms_ssim(a, b)
    assert why is None and ours == pytest.approx(_reference(torch, a, b), abs=1e-7)
    assert ms_ssim(a, a) == (1.0, None)


def test_ms_ssim_matches_pytorch_msssim_on_real_images(coco_root, kodak_dir):
    """Sides that are multiples of 16, where every halving is exact in both definitions."""
    torch = pytest.importorskip("torch")
    with Image.open(kodak_dir / "kodim23.png") as im:
        kodak = np.asarray(im.convert("RGB"))
    first, second = _real_images(coco_root, even=True, count=2)
    pairs = [(first, _jpeg(first, 5)), (second, _jpeg(second, 50)), (kodak, _jpeg(kodak, 20))]
    for a, b in pairs:
        ours, why = ms_ssim(a, b)
        assert why is None and ours == pytest.approx(_reference(torch, a, b), abs=1e-6)
    # the pairs are far apart, so the tolerance is small against what is compared
    assert len({round(ms_ssim(a, b)[0], 3) for a, b in pairs}) == len(pairs)


def _float64_ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM as written in Wang et al. 2003/2004 (five filtered maps, float64, scipy)."""
    from scipy.ndimage import correlate1d

    x0 = np.arange(11) - 5.0
    g = np.exp(-(x0**2) / (2 * 1.5**2))
    g /= g.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def filt(z):  # 'valid' separable filtering over axes 0 and 1
        return correlate1d(correlate1d(z, g, axis=0), g, axis=1)[5:-5, 5:-5]

    x, y = a.astype(np.float64), b.astype(np.float64)
    factors = []
    for level in range(5):
        mx, my = filt(x), filt(y)
        vx, vy, cov = filt(x * x) - mx**2, filt(y * y) - my**2, filt(x * y) - mx * my
        cs = (2 * cov + c2) / (vx + vy + c2)
        if level == 4:
            cs = cs * (2 * mx * my + c1) / (mx**2 + my**2 + c1)
        factors.append(np.maximum(cs.mean(axis=(0, 1)), 0))
        h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
        x = x[:h, :w].reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3))
        y = y[:h, :w].reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3))
    return float(np.mean(np.prod(np.stack(factors) ** np.array(MS_SSIM_WEIGHTS)[:, None], 0)))


def test_ms_ssim_on_odd_sizes_matches_float64_reference(coco_root):
    """Odd sides drop their last row/column at each halving (pytorch-msssim pads instead)."""
    for a in _real_images(coco_root, even=False, count=2):
        b = _jpeg(a, 10)
        assert ms_ssim(a, b)[0] == pytest.approx(_float64_ms_ssim(a, b), abs=1e-6)


def test_ms_ssim_size_limit_and_threads():
    torch = pytest.importorskip("torch")
    value, why = ms_ssim(natural_image(MS_SSIM_MIN_SIDE - 1, 300), natural_image(175, 300))
    assert math.isnan(value) and str(MS_SSIM_MIN_SIDE) in why
    a, b = natural_image(MS_SSIM_MIN_SIDE, 200), natural_image(MS_SSIM_MIN_SIDE, 200, seed=3)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "mean of empty slice" at the coarsest scale
            value, why = ms_ssim(a, b)
        assert torch.get_num_threads() == 2  # the caller's setting is restored
    finally:
        torch.set_num_threads(threads)
    assert why is None and value == pytest.approx(_float64_ms_ssim(a, b), abs=1e-6)
    assert 0 < value < 1
