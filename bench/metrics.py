"""Per-image quality metrics of an 8-bit reconstruction against its original.

All metrics take H×W×3 uint8 RGB arrays. A metric that is undefined for an image (an empty
region, an image too small for MS-SSIM) is NaN together with a short reason, never an error.

PSNR of an identical reconstruction (MSE 0) is +inf per image, as ffmpeg's ``psnr`` filter
and compressai's evaluation print it; aggregates cap every PSNR-type value at
:data:`PSNR_CAP_DB` (:func:`capped_psnr`) so that one lossless image cannot make a mean
infinite.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

PEAK = 255.0

#: The largest PSNR an aggregate counts, in dB: libaom and libvpx report
#: ``MAX_PSNR = 100.0`` for a zero error and clip every larger value to it
#: (``aom_dsp/psnr.c``: ``aom_sse_to_psnr``; ``vpx_dsp/psnr.c``: ``vpx_sse_to_psnr``).
#: For 8-bit data, 100 dB is an MSE of 6.5e-6: one sample off by one in ~150,000.
PSNR_CAP_DB = 100.0

#: The note of a row whose MS-SSIM was not computed because the run's ``--metrics`` left it
#: out (as opposed to an image too small for it): aggregates must not average MS-SSIM over
#: the remaining images as if they were the set.
MS_SSIM_SKIPPED = "MS-SSIM not computed (--metrics)"

#: MS-SSIM scale weights, Gaussian window and constants of Wang, Simoncelli & Bovik,
#: "Multiscale structural similarity for image quality assessment", Asilomar 2003.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_WIN_SIZE = 11
_WIN_SIGMA = 1.5
_K1, _K2 = 0.01, 0.03
_SCALES = len(MS_SSIM_WEIGHTS)
#: Smallest side MS-SSIM accepts: each halving drops an odd last row or column, so the
#: coarsest scale has ⌊side / 16⌋ pixels, and the 11-tap window must fit there.
MS_SSIM_MIN_SIDE = _WIN_SIZE * 2 ** (_SCALES - 1)


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
    """PSNR in dB for 8-bit data; +inf for a perfect reconstruction (see :func:`capped_psnr`)."""
    return math.inf if mse == 0 else 10.0 * math.log10(PEAK * PEAK / mse)


def capped_psnr(value: float) -> float:
    """``value`` clipped to :data:`PSNR_CAP_DB` (+inf included), as libaom reports PSNR.

    NaN (an undefined PSNR) stays NaN. Aggregates (:mod:`bench.summary`) average these.
    """
    return PSNR_CAP_DB if value > PSNR_CAP_DB else value


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
    A value that is +inf (identical pixels) gets a note saying that means count it as
    :data:`PSNR_CAP_DB`.
    """
    err = squared_error(a, b)
    channels = a.shape[2]
    total = float(err.sum(dtype=np.float64))
    full = psnr_from_mse(total / (err.size * channels))
    notes: list[str] = []
    if mask is None:
        roi = bg = math.nan
        notes.append("no ROI mask: ROI and background PSNR undefined")
    else:
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
    infinite = [n for n, v in (("PSNR", full), ("ROI-PSNR", roi), ("BG-PSNR", bg))
                if v == math.inf]
    if infinite:
        notes.append(f"identical pixels: {', '.join(infinite)} +inf "
                     f"(means count {PSNR_CAP_DB:g} dB)")
    return full, roi, bg, notes


# ------------------------------------------------------------------------------ MS-SSIM
def _gaussian_window() -> np.ndarray:
    """The normalised 11-tap Gaussian (σ = 1.5), computed in float64."""
    x = np.arange(_WIN_SIZE, dtype=np.float64) - (_WIN_SIZE - 1) / 2
    g = np.exp(-(x**2) / (2 * _WIN_SIGMA**2))
    return g / g.sum()


_KERNELS: dict = {}


def _kernels(torch, k: int):
    """Depthwise (k, 1, 11, 1) and (k, 1, 1, 11) float32 kernels of the Gaussian window."""
    if k not in _KERNELS:
        g = torch.from_numpy(_gaussian_window().astype(np.float32))
        _KERNELS[k] = (g.view(1, 1, -1, 1).repeat(k, 1, 1, 1),
                       g.view(1, 1, 1, -1).repeat(k, 1, 1, 1))
    return _KERNELS[k]


def _filter_valid(torch, maps):
    """Separable Gaussian filtering of an (H, W, …) float32 tensor, 'valid' positions only.

    The trailing dimensions are K maps, filtered by one grouped convolution per axis. An
    (H, W, K) array is PyTorch's channels-last layout of (1, K, H, W), for which its CPU
    convolutions are fastest. Returns (H - 10, W - 10, …) of the same trailing shape.
    """
    import torch.nn.functional as F

    h, w = maps.shape[:2]
    k = maps[0, 0].numel()
    col, row = _kernels(torch, k)
    nhwc = maps.as_strided((1, k, h, w), (h * w * k, 1, w * k, k))
    out = F.conv2d(F.conv2d(nhwc, col, groups=k), row, groups=k)
    return out[0].permute(1, 2, 0).view(out.shape[2], out.shape[3], *maps.shape[2:])


def _halve_into(out, x) -> None:
    """2×2 mean pooling of (H, W, …) ``x`` into ``out`` (an odd last row/column is dropped)."""
    h, w = out.shape[0] * 2, out.shape[1] * 2
    out.copy_(x[0:h:2, 0:w:2]).add_(x[1:h:2, 0:w:2]).add_(x[0:h:2, 1:w:2])
    out.add_(x[1:h:2, 1:w:2]).mul_(0.25)


def _ms_ssim_factors(torch, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-scale, per-channel MS-SSIM factors, a (5, C) float64 array before clipping.

    SSIM's terms (Wang, Bovik, Sheikh & Simoncelli, IEEE TIP 2004, eqs. 6–13, C3 = C2/2)
    rewritten in the sum s = x + y and difference d = x − y, so that x = (s + d)/2,
    y = (s − d)/2, μx² + μy² = (μs² + μd²)/2, σx² + σy² = (σs² + σd²)/2 and
    2σxy = (σs² − σd²)/2:

        contrast·structure  cs = (2σxy + C2) / (σx² + σy² + C2)
                               = 1 − 2σd² / (σs² + σd² + 2·C2),
        luminance            l = (2μxμy + C1) / (μx² + μy² + C1)
                               = 1 − 2μd² / (μs² + μd² + 2·C1).

    Four filtered maps (s, d, s², d²) instead of five, and both numerators come from d,
    small where the reconstruction is good, instead of from differences of large moments,
    so float32 is accurate. s is centred on twice a rounded per-channel mean (variances do
    not change; l adds it back), and every pooled value is a multiple of 4^-4 below 512
    in magnitude, so s and d are exact in float32 at every scale.
    """
    c1, c2 = (_K1 * PEAK) ** 2, (_K2 * PEAK) ** 2
    h, w, ch = a.shape
    # any offset would do; twice the rounded channel means of a subsample centre s well
    offset = 2 * np.round(a[::8, ::8].mean(axis=(0, 1)))
    offset = torch.from_numpy(offset.astype(np.float32))
    with warnings.catch_warnings():  # read-only arrays are only read here
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        at, bt = (torch.from_numpy(np.ascontiguousarray(z)) for z in (a, b))
    maps = torch.empty((h, w, 4, ch))  # s, d, s², d² per pixel: channels-last
    maps[:, :, 0].copy_(at).add_(bt).sub_(offset)
    maps[:, :, 1].copy_(at).sub_(bt)
    factors = np.empty((_SCALES, ch))
    for level in range(_SCALES):
        torch.pow(maps[:, :, :2], 2, out=maps[:, :, 2:])
        f = _filter_valid(torch, maps)
        f[:, :, 2:].addcmul_(f[:, :, :2], f[:, :, :2], value=-1)  # σs², σd²
        ms, md, den, var_d = f.unbind(2)
        den.add_(var_d).add_(2 * c2)
        ratio = torch.div(var_d, den)  # (1 − cs) / 2
        n = ratio.shape[0] * ratio.shape[1]
        if level < _SCALES - 1:
            total = ratio.view(-1, ch).sum(0, dtype=torch.float64).numpy()
            factors[level] = 1.0 - 2.0 * total / n
            half = torch.empty((h >> level + 1, w >> level + 1, 4, ch))
            _halve_into(half[:, :, :2], maps[:, :, :2])
            maps = half
        else:
            ms += offset
            lum = 1.0 - 2.0 * md * md / (ms * ms + md * md + 2 * c1)
            ssim = lum * (1.0 - 2.0 * ratio)
            factors[level] = ssim.view(-1, ch).sum(0, dtype=torch.float64).numpy() / n
    return factors


def ms_ssim(a: np.ndarray, b: np.ndarray) -> tuple[float, str | None]:
    """MS-SSIM (Wang et al. 2003) on RGB, computed per channel and averaged over channels.

    Five scales, 11-tap Gaussian window with σ = 1.5, K1 = 0.01, K2 = 0.03, data range 255,
    'valid' filtering, 2×2 mean pooling between scales (an odd last row or column is
    dropped), negative per-scale terms clipped to 0 (as pytorch-msssim does). Float32
    PyTorch convolutions on one thread. Returns NaN with a reason when the shorter side is
    below :data:`MS_SSIM_MIN_SIDE` pixels.
    """
    _check_pair(a, b)
    if min(a.shape[:2]) < MS_SSIM_MIN_SIDE:
        return math.nan, f"image smaller than {MS_SSIM_MIN_SIDE} px: MS-SSIM undefined"
    import torch

    threads = torch.get_num_threads()
    if threads != 1:  # one thread: a fixed reduction order, and no oversubscribed workers
        torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            factors = _ms_ssim_factors(torch, a, b)
    finally:
        if threads != 1:
            torch.set_num_threads(threads)
    weights = np.asarray(MS_SSIM_WEIGHTS)[:, None]
    per_channel = np.prod(np.maximum(factors, 0.0) ** weights, axis=0)
    return float(per_channel.mean()), None
