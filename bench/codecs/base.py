"""The contract every codec fulfils, and the errors codecs raise.

A codec turns an RGB image (plus an optional region-of-interest mask) into bytes that hold
everything its decoder needs, the image shape included, and turns those bytes back into an
image. The harness counts every byte of that bitstream, so bpp is honest by construction.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from bench.errors import CodecError, CodecUnavailable

__all__ = ["Codec", "CodecError", "CodecUnavailable", "check_image"]


class Codec(ABC):
    """Base class of all codecs.

    Subclasses set ``name`` and ``qualities`` (the named quality grid, ordered from low to
    high rate) and implement :meth:`encode`, :meth:`decode` and :meth:`version`.

    ``uses_roi`` says whether the codec spends bits according to the ROI mask; codecs that
    ignore it receive it anyway and must not put it into the bitstream for free. A codec
    with ``uses_roi = True`` accepts a constructor option ``roi`` ("gt" or "none", set by
    ``bench run --roi``) and names it in :meth:`version`, so the two modes never share rows.
    Constructor options that differ from their defaults also name the run in reports: its
    label is ``name@key-value`` (:mod:`bench.labels`; an option without a default always
    counts), and :meth:`version` must name each option that changes the output.
    """

    name: ClassVar[str] = ""
    qualities: ClassVar[tuple[str, ...]] = ()
    uses_roi: ClassVar[bool] = False
    #: whether the bitstream is the same on every CPU kind. False for a codec whose encoder
    #: computes in floating point through kernels the CPU's features choose (a learned
    #: codec's transforms: AVX2 and AVX-512 sum in different orders, and a latent on a
    #: rounding boundary flips); ``bench check`` then gates its bytes within 1 % instead of
    #: exactly, and its bitstream digest as WARN, where the CPU or torch version differs from
    #: the baseline's.
    cpu_exact: ClassVar[bool] = True

    #: argv of the external program the last ``encode`` ran, or None; the harness keeps it
    #: with each result so a row can be reproduced by hand.
    last_command: list[str] | None = None

    @abstractmethod
    def version(self) -> str:
        """Version and configuration string stored with every result of this codec.

        Two results are comparable only when their version strings are equal, so include
        everything that changes the bitstream (library/encoder version, preset, grid map).
        """

    def availability(self) -> str | None:
        """None when the codec can run here, else a short reason why it cannot."""
        return None

    def load(self) -> None:
        """Load what coding needs (model weights, tables) now instead of on the first encode.

        The harness calls it once per codec object in each worker process, before that
        codec's first timed encode, and stores the time it took apart from the encode times
        (``load_s``), so a codec that loads lazily does not charge its loading to the first
        image it codes. Raise :class:`CodecUnavailable` or :class:`CodecError` if it cannot
        load; calling it again must be cheap. The default has nothing to load.
        """
        return None

    @abstractmethod
    def encode(self, image: np.ndarray, roi: np.ndarray | None, quality: str) -> bytes:
        """Compress ``image`` (H×W×3 uint8 RGB) at the named ``quality``.

        ``roi`` is an H×W bool mask (True inside the region of interest) or None.
        The returned bytes must be self-contained: the decoder gets nothing else.
        """

    @abstractmethod
    def decode(self, data: bytes) -> np.ndarray:
        """Decompress a bitstream made by :meth:`encode` into an H×W×3 uint8 RGB image."""

    def encode_source(
        self, image: np.ndarray, roi: np.ndarray | None, quality: str, source: bytes
    ) -> bytes:
        """Encode with access to the source file's bytes; most codecs ignore ``source``.

        The ``original`` codec overrides this to pass the source file through unchanged.
        """
        return self.encode(image, roi, quality)

    def check_quality(self, quality: str) -> str:
        """Return ``quality`` if it is on this codec's grid, else raise a helpful ValueError."""
        if quality not in self.qualities:
            raise ValueError(
                f"codec {self.name!r} has no quality {quality!r}; "
                f"its grid is {', '.join(self.qualities)}"
            )
        return quality

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def check_image(image: np.ndarray) -> np.ndarray:
    """Validate an encoder input: H×W×3 uint8, at least 1×1. Returns it unchanged."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 numpy image, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"expected an H×W×3 RGB image, got shape {image.shape}")
    return image
