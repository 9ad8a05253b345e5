"""ROI by background simplification: any codec spends fewer bits outside the objects.

The encoder-side pre-filter keeps the ROI, grown by :data:`KEEP_PX` pixels, exactly as it is
and replaces the rest of the picture by a low-passed copy (:func:`low_pass`: a blur of a
given Gaussian-equivalent sigma made by down-sampling, a small Gaussian and up-sampling)
before the unchanged codec codes it. Blurred background has little high-frequency content,
so every transform codec spends less on it; the decoder is the codec's own and needs nothing
extra, so bpp stays honest. This is the classical ROI baseline of coding-for-machines papers
when an encoder has no spatial rate control of its own, and it needs no line of
codec-specific code: :class:`PrefilteredCodec` wraps any registered codec, third-party ones
included (``bench run --roi-method blur``; :func:`bench.registry.create_codec` with
``roi_method="blur"``).

The blur strength is part of the quality grid: each point of the wrapped codec's grid is
paired with a blur sigma (:func:`sigma_schedule`), strongest at the lowest rate, so the grid
stays ordered low → high rate (a higher codec quality and a weaker blur both add rate).
Point names are ``<codec point>-b<sigma>``, e.g. ``q50-b2``. The sigmas, the low-pass, the
kept margin and the wrapped codec's own version string make up the version, so variants
never share rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.codecs.base import Codec, check_image

if TYPE_CHECKING:
    import numpy as np

#: Pixels the kept region extends beyond the ROI: covers a 16×16 transform block (and
#: 4:2:0 chroma's 8×8 blocks at half resolution) that touches the ROI at its corner, so
#: the ROI's own blocks see no blurred pixel in codecs with blocks up to that size.
KEEP_PX = 23
#: Background blur (Gaussian sigma, pixels) at the lowest- and highest-rate grid points;
#: the points between are spaced evenly in log sigma.
SIGMA_LOW_RATE, SIGMA_HIGH_RATE = 8.0, 1.0
#: Names the low-pass in the version string (rows made with a plain full-resolution Gaussian,
#: the first implementation, carry no such tag).
LOW_PASS = "lowpass=area-gauss-linear"
#: ROI methods ``bench run --roi-method`` knows.
METHODS = ("blur",)


def sigma_schedule(points: int) -> tuple[float, ...]:
    """Blur sigmas of a grid of ``points`` points, low → high rate, rounded to 0.1 px."""
    import math

    if points == 1:
        return (round(math.sqrt(SIGMA_LOW_RATE * SIGMA_HIGH_RATE), 1),)
    ratio = SIGMA_HIGH_RATE / SIGMA_LOW_RATE
    return tuple(round(SIGMA_LOW_RATE * ratio ** (i / (points - 1)), 1) for i in range(points))


def keep_mask(roi: np.ndarray | None, shape: tuple[int, int], keep_px: int = KEEP_PX):
    """The pixels the pre-filter keeps: those within ``keep_px`` (Euclidean) of the ROI."""
    import numpy as np

    from bench.roi_pred import dilate

    return np.zeros(shape, bool) if roi is None else dilate(roi, keep_px)


def low_pass(image: np.ndarray, sigma: float) -> np.ndarray:
    """``image`` blurred by about a Gaussian of std ``sigma`` pixels, cheaply (uint8 in, out).

    The picture is averaged down by a power of two ``f`` (``sigma`` rounded down to one, at
    least 2; OpenCV ``INTER_AREA``, a box of ``f`` pixels), blurred there by a Gaussian that
    makes up the rest of the variance, and brought back with bilinear interpolation (a
    triangle of half width ``f``). The box and the triangle have variances (f²−1)/12 and
    (f²−1)/6, so the small Gaussian gets sigma_low² = (sigma² − (f²−1)/4) / f² (sigma_low at
    least 0.25 for sigma ≥ 1, 0.86 from sigma 2 on; Burt & Adelson's pyramid argument, IEEE
    Trans. Commun. 1983: blur at the resolution the blur leaves). Averaged over where a
    detail lies against the down-sampling grid, the spread is the Gaussian's; a single
    detail may move by up to ``f/2``, which the background of an ROI pre-filter can afford.
    It costs two resamplings of the full picture whatever ``sigma`` is: a full-resolution
    Gaussian of sigma 8 costs about as much as coding the picture with JPEG, which an
    encoder-side pre-filter must not.
    Below sigma 0.87 it is the plain Gaussian.
    """
    import math

    import cv2
    import numpy as np

    if sigma <= 0:
        return image.copy()
    f = max(2, 1 << math.floor(math.log2(sigma))) if sigma >= 0.87 else 1
    h, w = image.shape[:2]
    small_var = (sigma * sigma - (f * f - 1) / 4) / (f * f)
    small = cv2.resize(image, (-(-w // f), -(-h // f)), interpolation=cv2.INTER_AREA) \
        if f > 1 else np.ascontiguousarray(image)
    if small_var > 0.01:
        small = cv2.GaussianBlur(small, (0, 0), sigmaX=math.sqrt(small_var),
                                 borderType=cv2.BORDER_REPLICATE)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR) if f > 1 else small


def simplify_background(image: np.ndarray, roi: np.ndarray | None, sigma: float,
                        keep_px: int = KEEP_PX, keep: np.ndarray | None = None) -> np.ndarray:
    """``image`` with everything farther than ``keep_px`` from the ROI low-passed
    (:func:`low_pass` of ``sigma``).

    ROI pixels (and the margin) are returned unchanged, bit for bit. With no ROI (None or
    empty) the whole picture is background. ``keep`` may pass :func:`keep_mask`'s result.
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
        self._roi = self._keep = None  # the last ROI seen and its keep mask

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
                f"{LOW_PASS} keep={KEEP_PX}px")

    def availability(self) -> str | None:
        return self.inner.availability()

    def load(self) -> None:
        load = getattr(self.inner, "load", None)
        if callable(load):
            load()

    def encode(self, image: np.ndarray, roi: np.ndarray | None, quality: str) -> bytes:
        check_image(image)
        inner_quality = self._inner_quality[self.check_quality(quality)]
        # the harness passes one ROI object for all of an image's points: grow it once
        if roi is not self._roi or self._keep is None or self._keep.shape != image.shape[:2]:
            self._roi, self._keep = roi, keep_mask(roi, image.shape[:2])
        filtered = simplify_background(image, roi, self.sigmas[inner_quality], keep=self._keep)
        return self.inner.encode(filtered, roi, inner_quality)

    def decode(self, data: bytes) -> np.ndarray:
        return self.inner.decode(data)

    def __repr__(self) -> str:
        return f"PrefilteredCodec({self.inner!r}, method={self.method!r})"
