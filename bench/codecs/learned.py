"""Shared codec class of ``ggm`` and ``gaussian-roi`` (one small subclass each).

It loads a released model (:mod:`bench.learned.checkpoint`) and codes with
:mod:`bench.learned.coding`; :mod:`bench.learned` holds the model, this package the codecs.

Options (``codec_options`` of ``bench run``): ``roi="gt"`` (default: the dataset's mask,
union of instance masks), ``roi="pred"`` (the mask an instance-segmentation model predicted
at the encoder, :mod:`bench.roi_pred`; ``roi_source`` names that model and its settings and
goes into the version) or ``roi="none"`` (uniform quality, e.g. for Kodak); ``weights``:
another released checkpoint. The codec codes whatever mask it is given in ``gt`` and
``pred`` mode alike; the mode only says where the harness took it from.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import ClassVar

import numpy as np

from bench.codecs.base import Codec, CodecError, CodecUnavailable, check_image
from bench.learned import WEIGHTS_DIR
from bench.learned.coding import MAX_PIXELS, decode_image, encode_image
from bench.learned.qmap import GRID_NAMES, grid_description, grid_point

#: Where the ROI a codec is given comes from: the data set's masks, a model's prediction
#: at the encoder (:mod:`bench.roi_pred`), or nowhere (uniform coding).
CODEC_ROI_MODES = ("gt", "pred", "none")


class LearnedRoiCodec(Codec):
    """A learned ROI codec backed by a released checkpoint in ``bench/learned/weights``."""

    entropy: ClassVar[str] = ""
    qualities = GRID_NAMES
    uses_roi = True
    cpu_exact = False  # float32 transforms (see bench.learned.coding, "Determinism")

    def __init__(
        self, roi: str = "gt", weights: str | None = None, roi_source: str | None = None
    ) -> None:
        if roi not in CODEC_ROI_MODES:
            raise ValueError(f"roi must be one of {CODEC_ROI_MODES}, got {roi!r}")
        if (roi == "pred") != bool(roi_source):
            raise ValueError(
                "roi='pred' needs roi_source (the ROI model and its settings, "
                "which bench run --roi pred supplies), and only it takes one"
            )
        if roi_source and ("/" in roi_source or not roi_source.isprintable()):
            raise ValueError(f"roi_source must be printable without '/', got {roi_source!r}")
        self.roi_mode = roi
        self.roi_source = roi_source
        self.weights = Path(weights) if weights else WEIGHTS_DIR / f"{self.name}.pt"
        self._model = None
        self._digest: str | None = None

    def availability(self) -> str | None:
        if not self.weights.is_file():
            return (
                f"no trained checkpoint at {self.weights}; run bench train --entropy "
                f"{self.entropy} (then --export) to make one"
            )
        return None

    def _checkpoint_digest(self) -> str:
        if self._digest is None:
            h = hashlib.sha256()
            with open(self.weights, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            self._digest = h.hexdigest()[:12]
        return self._digest

    def version(self) -> str:
        ckpt = self._checkpoint_digest() if self.weights.is_file() else "untrained"
        roi = f"roi-pred-{self.roi_source}" if self.roi_mode == "pred" else f"roi-{self.roi_mode}"
        # v1: bitstream format 1 (release 1, release 2 at step 10,000); v2: format 2
        # (release 2 final); v3: format 3 (release 3); v4: format 3 with the transforms
        # stored channels-last (release 5; load_model)
        return f"{self.name}-v4/{ckpt}/{roi}/{grid_description()}"

    def load(self) -> None:
        """Load the checkpoint now (the ``model`` property would on the first encode)."""
        _ = self.model

    @property
    def model(self):
        if self._model is None:
            reason = self.availability()
            if reason:
                raise CodecUnavailable(reason)
            from bench.learned.checkpoint import load_model

            try:
                model, _ = load_model(self.weights)
            except ValueError as exc:  # CheckpointError, or not a released model
                raise CodecError(str(exc)) from None
            if model.entropy != self.entropy:
                raise CodecError(
                    f"{self.weights} holds a {model.entropy} model, not {self.entropy}"
                )
            self._model = model
        return self._model

    def encode(self, image: np.ndarray, roi: np.ndarray | None, quality: str) -> bytes:
        check_image(image)
        if image.shape[0] * image.shape[1] > MAX_PIXELS:
            raise CodecError(
                f"{image.shape[1]}×{image.shape[0]} is more than the "
                f"{MAX_PIXELS} pixels the learned codecs handle; downscale or tile"
            )
        point = grid_point(self.check_quality(quality))
        mode = "none" if self.roi_mode == "none" else "gt"  # pred: code the mask given
        return encode_image(self.model, image, roi, point, mode)

    def decode(self, data: bytes) -> np.ndarray:
        return decode_image(self.model, data)
