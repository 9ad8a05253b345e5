"""Per-image quality metrics of an 8-bit reconstruction against its original.

All metrics take H×W×3 uint8 RGB arrays. A metric that is undefined for an image (an empty
region, an image too small for MS-SSIM) is NaN together with a short reason, never an error.
"""

from __future__ import annotations

import math

import numpy as np

PEAK = 255.0

#: MS-SSIM scale weights, Gaussian window and constants of Wang, Simoncelli & Bovik,
#: "Multiscale structural similarity for image quality assessment", Asilomar 2003.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_WIN_SIZE = 11
_WIN_SIGMA = 1.5
_K1, _K2 = 0.01, 0.03
#: Smallest side MS-SSIM accepts: the window must fit at the coarsest of the five scales.
MS_SSIM_MIN_SIDE = (_WIN_SIZE - 1) * 2 ** (len(MS_SSIM_WEIGHTS) - 1) + 1


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"reconstruction shape {b.shape} differs from original {a.shape}")


def squared_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel squared error summed over the colour channels, as float32 H×W.

    Exact: a pixel's sum is an integer ≤ 3·255², far below float32's 2^24 integer range.
    """
    _check_pair(a, b)
    d = a.astype(np.float32)
    d -= b
    d *= d
    return d.sum(axis=2) if d.shape[2] != 3 else d[:, :, 0] + d[:, :, 1] + d[:, :, 2]


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB for 8-bit data; +inf for a perfect reconstruction."""
    return math.inf if mse == 0 else 10.0 * math.log10(PEAK * PEAK / mse)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR over all pixels and the three RGB channels."""
    err = squared_error(a, b)
    return psnr_from_mse(float(err.sum(dtype=np.float64)) / (err.size * a.shape[2]))


def region_psnrs(
    a: np.ndarray, b: np.ndarray, mask: np.ndarray | None
) -> tuple[float, float, float, list[str]]:
    """(PSNR, ROI-PSNR, background PSNR, notes) from one squared-error pass.

    ROI-PSNR is the PSNR of the MSE over the mask's pixels, background PSNR over its
    complement; either is NaN with a note when its region is empty (or no mask is given).
    """
    err = squared_error(a, b)
    channels = a.shape[2]
    total = float(err.sum(dtype=np.float64))
    full = psnr_from_mse(total / (err.size * channels))
    notes: list[str] = []
    if mask is None:
        return full, math.nan, math.nan, ["no ROI mask: ROI and background PSNR undefined"]
    if mask.shape != err.shape:
        raise ValueError(f"ROI mask shape {mask.shape} differs from image {err.shape}")
    n_roi = int(np.count_nonzero(mask))
    n_bg = err.size - n_roi
    roi_sum = float(err[mask].sum(dtype=np.float64)) if n_roi else 0.0
    roi = psnr_from_mse(roi_sum / (n_roi * channels)) if n_roi else math.nan
    bg = psnr_from_mse((total - roi_sum) / (n_bg * channels)) if n_bg else math.nan
    if not n_roi:
        notes.append("empty ROI: ROI-PSNR undefined")
    if not n_bg:
        notes.append("ROI covers the whole image: background PSNR undefined")
    return full, roi, bg, notes


def _gaussian_window() -> np.ndarray:
    x = np.arange(_WIN_SIZE, dtype=np.float64) - (_WIN_SIZE - 1) / 2
    g = np.exp(-(x**2) / (2 * _WIN_SIGMA**2))
    return g / g.sum()


def _filter_valid(stack: np.ndarray, win: np.ndarray) -> np.ndarray:
    """Separable Gaussian filtering of a (N, H, W) stack, keeping only 'valid' positions."""
    from scipy.ndimage import correlate1d

    out = correlate1d(stack, win, axis=1, mode="constant")
    out = correlate1d(out, win, axis=2, mode="constant")
    r = _WIN_SIZE // 2
    return out[:, r : out.shape[1] - r, r : out.shape[2] - r]


def _ssim_terms(x: np.ndarray, y: np.ndarray, win: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean SSIM and contrast-structure term of two (C, H, W) float arrays."""
    c1, c2 = (_K1 * PEAK) ** 2, (_K2 * PEAK) ** 2
    f = _filter_valid(np.concatenate([x, y, x * x, y * y, x * y]), win)
    n = x.shape[0]
    mx, my, xx, yy, xy = (f[i * n : (i + 1) * n] for i in range(5))
    vx, vy, cov = xx - mx * mx, yy - my * my, xy - mx * my
    cs = (2 * cov + c2) / (vx + vy + c2)
    ssim = (2 * mx * my + c1) / (mx * mx + my * my + c1) * cs
    return ssim.mean(axis=(1, 2)), cs.mean(axis=(1, 2))


def _halve(x: np.ndarray) -> np.ndarray:
    """2×2 mean pooling of a (C, H, W) array (an odd last row/column is dropped)."""
    h, w = x.shape[1] // 2 * 2, x.shape[2] // 2 * 2
    x = x[:, :h, :w]
    return 0.25 * (x[:, 0::2, 0::2] + x[:, 1::2, 0::2] + x[:, 0::2, 1::2] + x[:, 1::2, 1::2])


def ms_ssim(a: np.ndarray, b: np.ndarray) -> tuple[float, str | None]:
    """MS-SSIM (Wang et al. 2003) on RGB, computed per channel and averaged over channels.

    Five scales, 11-tap Gaussian window with σ = 1.5, K1 = 0.01, K2 = 0.03, data range 255,
    negative per-scale terms clipped to 0 (as pytorch-msssim does). Returns NaN with a reason
    when the shorter side is below :data:`MS_SSIM_MIN_SIDE` pixels.
    """
    _check_pair(a, b)
    if min(a.shape[:2]) < MS_SSIM_MIN_SIDE:
        return math.nan, f"image smaller than {MS_SSIM_MIN_SIDE} px: MS-SSIM undefined"
    x = np.moveaxis(a, 2, 0).astype(np.float32)
    y = np.moveaxis(b, 2, 0).astype(np.float32)
    win = _gaussian_window().astype(np.float32)
    weights = np.asarray(MS_SSIM_WEIGHTS)
    factors = []
    for level in range(len(weights)):
        ssim, cs = _ssim_terms(x, y, win)
        last = level == len(weights) - 1
        factors.append(np.maximum(ssim if last else cs, 0.0).astype(np.float64))
        if not last:
            x, y = _halve(x), _halve(y)
    per_channel = np.prod(np.stack(factors) ** weights[:, None], axis=0)
    return float(per_channel.mean()), None
