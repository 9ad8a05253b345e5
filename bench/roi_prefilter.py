"""ROI by background simplification: any codec spends fewer bits outside the objects.

The encoder-side pre-filter keeps the ROI, grown by at least :data:`KEEP_PX` pixels
(:func:`keep_mask`), exactly as it is and replaces the rest of the picture by a low-passed
copy (:func:`low_pass`: a blur of a given Gaussian-equivalent sigma made by down-sampling, a
small Gaussian and up-sampling) before the unchanged codec codes it. Blurred background has
little high-frequency content, so every transform codec spends less on it; the decoder is
the codec's own and needs nothing extra, so bpp stays honest. This is the classical ROI
baseline of coding-for-machines papers when an encoder has no spatial rate control of its
own, and it needs no line of codec-specific code: :class:`PrefilteredCodec` wraps any
registered codec, third-party ones included (``bench run --roi-method blur``;
:func:`bench.registry.create_codec` with ``roi_method="blur"``).

The blur strength is part of the quality grid: each point of the wrapped codec's grid is
paired with a blur sigma (:func:`sigma_schedule`), strongest at the lowest rate, so the grid
stays ordered low → high rate (a higher codec quality and a weaker blur both add rate).
Point names are ``<codec point>-b<sigma>``, e.g. ``q50-b2``. The sigmas, the low-pass, the
kept margin and the wrapped codec's own version string make up the version, so variants
never share rows.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from bench.codecs.base import Codec, check_image

if TYPE_CHECKING:
    import numpy as np

#: Pixels the kept region extends beyond the ROI at least: covers a 16×16 transform block (and
#: 4:2:0 chroma's 8×8 blocks at half resolution) that touches the ROI at its corner, so
#: the ROI's own blocks see no blurred pixel in codecs with blocks up to that size.
KEEP_PX = 23
#: Background blur (Gaussian sigma, pixels) at the lowest- and highest-rate grid points;
#: the points between are spaced evenly in log sigma.
SIGMA_LOW_RATE, SIGMA_HIGH_RATE = 8.0, 1.0
#: Names the low-pass and the keep mask in the version string. Rows made with a plain
#: full-resolution Gaussian (the first implementation) carry no such tag; rows tagged
#: ``lowpass=area-gauss-linear keep=23px`` averaged down in one step and kept exactly the
#: pixels within 23 px (a full-resolution distance transform).
LOW_PASS = "lowpass=pyr2-gauss-linear"
KEEP = "keep-mask=half-res"
#: ROI methods ``bench run --roi-method`` knows.
METHODS = ("blur",)


def sigma_schedule(points: int) -> tuple[float, ...]:
    """Blur sigmas of a grid of ``points`` points, low → high rate, rounded to 0.1 px."""
    if points == 1:
        return (round(math.sqrt(SIGMA_LOW_RATE * SIGMA_HIGH_RATE), 1),)
    ratio = SIGMA_HIGH_RATE / SIGMA_LOW_RATE
    return tuple(round(SIGMA_LOW_RATE * ratio ** (i / (points - 1)), 1) for i in range(points))


def keep_mask(roi: np.ndarray | None, shape: tuple[int, int], keep_px: int = KEEP_PX):
    """The pixels the pre-filter keeps: all within ``keep_px`` (Euclidean) of the ROI, and
    some up to ``keep_px`` + 3.

    Found at half resolution, a quarter of the cost of the exact distance transform: a 2×2
    cell holding an ROI pixel is an ROI cell, and a cell is kept when its centre lies within
    ``keep_px`` + √2 pixels of an ROI cell's centre (a pixel and its cell's centre are
    √2/2 apart, on both ends), so no pixel within ``keep_px`` of the ROI is missed.
    """
    import cv2
    import numpy as np

    if roi is None or not roi.any():
        return np.zeros(shape, bool)
    h, w = shape
    m = np.ascontiguousarray(roi, dtype=bool)
    if h % 2 or w % 2:
        m = np.pad(m, ((0, h % 2), (0, w % 2)))
    cells = m[0::2, 0::2] | m[1::2, 0::2] | m[0::2, 1::2] | m[1::2, 1::2]
    outside = (~cells).view(np.uint8)
    near = cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE) \
        <= (keep_px + math.sqrt(2)) / 2
    full = cv2.resize(near.view(np.uint8), (2 * near.shape[1], 2 * near.shape[0]),
                      interpolation=cv2.INTER_NEAREST)
    return np.ascontiguousarray(full[:h, :w]).view(bool)


def pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    """``image`` and ``levels`` copies averaged down by 2, 4, …: each level the 2×2 box mean
    of the one before (an odd last row or column repeated), OpenCV's fast ``INTER_AREA``
    path; the general one for 4× or 8× costs about 0.5 ms at 640×480, most of a JPEG
    encode."""
    import cv2
    import numpy as np

    out = [np.ascontiguousarray(image)]
    for _ in range(levels):
        prev = out[-1]
        h, w = prev.shape[:2]
        if h % 2 or w % 2:
            prev = cv2.copyMakeBorder(prev, 0, h % 2, 0, w % 2, cv2.BORDER_REPLICATE)
        out.append(cv2.resize(prev, (prev.shape[1] // 2, prev.shape[0] // 2),
                              interpolation=cv2.INTER_AREA))
    return out


def _factor(sigma: float) -> int:
    """The down-sampling factor :func:`low_pass` uses for ``sigma`` (1: none)."""
    return max(2, 1 << math.floor(math.log2(sigma))) if sigma >= 0.87 else 1


def low_pass(image: np.ndarray, sigma: float) -> np.ndarray:
    """``image`` blurred by about a Gaussian of std ``sigma`` pixels, cheaply (uint8 in, out).

    The picture is averaged down by a power of two ``f`` (``sigma`` rounded down to one, at
    least 2; 2×2 box means repeated, :func:`pyramid`), blurred there by a Gaussian that
    makes up the rest of the variance, and brought back with bilinear interpolation (a
    triangle of half width ``f``). The box and the triangle have variances (f²−1)/12 and
    (f²−1)/6, so the small Gaussian gets sigma_low² = (sigma² − (f²−1)/4) / f² (sigma_low at
    least 0.25 for sigma ≥ 1, 0.86 from sigma 2 on; Burt & Adelson's pyramid argument, IEEE
    Trans. Commun. 1983: blur at the resolution the blur leaves). Averaged over where a
    detail lies against the down-sampling grid, the spread is the Gaussian's; a single
    detail may move by up to ``f/2``, which the background of an ROI pre-filter can afford.
    It costs a resampling of the full picture whatever ``sigma`` is (a full-resolution
    Gaussian of sigma 8 costs about as much as coding the picture with JPEG, which an
    encoder-side pre-filter must not); averaging down by 8 costs about 0.1 ms at 640×480.
    Below sigma 0.87 it is the plain Gaussian.
    """
    import cv2

    if sigma <= 0:
        return image.copy()
    f = _factor(sigma)
    h, w = image.shape[:2]
    small = pyramid(image, f.bit_length() - 1)[-1]
    small_var = (sigma * sigma - (f * f - 1) / 4) / (f * f)
    if small_var > 0.01:
        small = cv2.GaussianBlur(small, (0, 0), sigmaX=math.sqrt(small_var),
                                 borderType=cv2.BORDER_REPLICATE)
    elif f == 1:
        small = small.copy()
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR) if f > 1 else small


def simplify_background(image: np.ndarray, roi: np.ndarray | None, sigma: float,
                        keep_px: int = KEEP_PX, keep: np.ndarray | None = None) -> np.ndarray:
    """``image`` with everything farther than ``keep_px`` from the ROI low-passed
    (:func:`low_pass` of ``sigma``).

    ROI pixels (and the margin) are returned unchanged, bit for bit. With no ROI (None or
    empty) the whole picture is background. ``keep`` may pass :func:`keep_mask`'s result
    (made once for all of an image's points).
    """
    import cv2
    import numpy as np

    if keep is None:
        keep = keep_mask(roi, image.shape[:2], keep_px)
    if keep.all():
        return image.copy()
    image = np.ascontiguousarray(image)
    out = low_pass(image, sigma)
    cv2.copyTo(image, keep.view(np.uint8), out)  # kept pixels back, bit for bit
    return out


class PrefilteredCodec(Codec):
    """``inner`` with the background blurred before encoding (see the module doc)."""

    uses_roi = True

    def __init__(self, inner: Codec, method: str = "blur",
                 roi_source: str | None = None) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown ROI method {method!r}; choose from {', '.join(METHODS)}")
        if inner.uses_roi:
            raise ValueError(f"codec {inner.name} codes the ROI itself; the background "
                             "pre-filter is for codecs that do not")
        self.inner, self.method = inner, method
        self.roi_source = roi_source  # None: the GT ROI; else the predicted ROI's key
        self.name = inner.name
        self.sigmas = dict(zip(inner.qualities, sigma_schedule(len(inner.qualities)),
                               strict=True))
        self.qualities = tuple(f"{q}-b{s:g}" for q, s in self.sigmas.items())
        self._inner_quality = dict(zip(self.qualities, inner.qualities, strict=True))
        self._roi = self._keep = None  # a copy of the last ROI seen and its keep mask

    @property
    def last_command(self):  # the wrapped codec's external program, when it has one
        return self.inner.last_command

    @last_command.setter
    def last_command(self, value) -> None:
        self.inner.last_command = value

    def version(self) -> str:
        sigmas = ",".join(f"{s:g}" for s in self.sigmas.values())
        roi = f"roi-pred-{self.roi_source}" if self.roi_source else "roi-gt"
        return (f"{self.inner.version()}/{roi}-prefilter-{self.method} sigma={sigmas} "
                f"{LOW_PASS} keep={KEEP_PX}px {KEEP}")

    def availability(self) -> str | None:
        return self.inner.availability()

    def load(self) -> None:
        load = getattr(self.inner, "load", None)
        if callable(load):
            load()

    def encode(self, image: np.ndarray, roi: np.ndarray | None, quality: str) -> bytes:
        check_image(image)
        inner_quality = self._inner_quality[self.check_quality(quality)]
        import numpy as np

        # all of an image's points have the same ROI: grow it once. Compared by content (3 %
        # of the cost of growing it): a caller may reuse one array for several images.
        shape = image.shape[:2]
        same = self._keep is not None and self._keep.shape == shape and (
            roi is None if self._roi is None else
            roi is not None and np.array_equal(roi, self._roi))
        if not same:
            self._roi = None if roi is None else np.array(roi, copy=True)
            self._keep = keep_mask(roi, shape)
        filtered = simplify_background(image, roi, self.sigmas[inner_quality], keep=self._keep)
        return self.inner.encode(filtered, roi, inner_quality)

    def decode(self, data: bytes) -> np.ndarray:
        return self.inner.decode(data)

    def __repr__(self) -> str:
        return f"PrefilteredCodec({self.inner!r}, method={self.method!r})"
