"""Predicted ROI (``bench run --roi pred``): the encoder finds the objects itself.

A deployed ROI encoder has no ground-truth masks. With ``--roi pred`` an instance
segmentation model runs on the *original* image before encoding, and the ROI the codec gets
is the union of the masks it predicts with a score of at least ``score``, dilated by
``dilate`` pixels (a disk, so that object borders, where a mask is least sure, keep ROI
quality). Quality is still measured on the ground-truth ROI: ROI-PSNR asks how well the
objects came through, whoever found them.

The predicted ROI of an image depends only on the image, the model file and the two
settings, so it is computed once per run directory, in the driver, before any coding
(:func:`predict_missing`), and every codec and grid point of that and later runs reads it
from the cache (``RUN_DIR/roi/KEY/IMAGE_ID.png`` plus a JSON note with the model's time):
a killed run never recomputes what it finished, and the model's time is kept apart from
encode time. ``KEY`` (:attr:`RoiPredictor.key`) names the model file (stem and sha256
prefix) and the settings; it is also part of the codec's version string, so results of
different ROI sources never share rows in the store.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported where it is used: the CLI reads the defaults below
    import numpy as np

#: Default minimum score of a predicted instance that joins the ROI, and the default
#: dilation in pixels. Chosen with ``benchmarks/roi_pred.py`` on the 79 shared val2017 images
#: and the shared int8 YOLO11n-seg: score 0.1 gives the highest IoU with the GT ROI of the
#: thresholds tried (0.75 against 0.71 at 0.25 and 0.58 at 0.5), and 4 px of dilation trade
#: 0.01 of that IoU for 3 points of recall (0.93 of the GT ROI's pixels covered): a missed
#: object is coded as background, which costs a detector more than a little extra ROI costs
#: in rate.
DEFAULT_SCORE = 0.1
DEFAULT_DILATE = 4


class RoiError(RuntimeError):
    """A predicted ROI cannot be made or read; the message names the image or model."""


def dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    """``mask`` grown by a disk of radius ``pixels``: every pixel within that Euclidean
    distance of it (OpenCV's exact distance transform)."""
    import cv2
    import numpy as np

    mask = mask.astype(bool)
    if pixels <= 0 or not mask.any():
        return mask.copy()
    outside = (~mask).astype(np.uint8)
    return cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE) <= pixels


def check_settings(score: float, pixels: int) -> None:
    """Raise ValueError naming the option when a setting is out of range."""
    if not 0.0 < score <= 1.0:
        raise ValueError(f"--roi-score must be in (0, 1], got {score}")
    if pixels < 0:
        raise ValueError(f"--roi-dilate must be 0 or more pixels, got {pixels}")


@dataclass
class RoiPrediction:
    """One image's predicted ROI and what making it cost."""

    mask: np.ndarray  # H×W bool
    seconds: float  # model time (inference and mask union), not part of any encode time
    instances: int  # instances at or above the score threshold


class RoiPredictor:
    """An instance-segmentation model that turns an image into an ROI mask.

    ``model`` is anything the segmentation task loads (a ``.pt`` through Ultralytics' safe
    load, ``.onnx`` or ``.tflite``); it is loaded once, here.
    """

    def __init__(self, model: str, score: float = DEFAULT_SCORE,
                 pixels: int = DEFAULT_DILATE) -> None:
        from bench.tasks.base import PredictionSettings
        from bench.tasks.ultralytics_backend import UltralyticsModel

        check_settings(score, pixels)
        self.score, self.pixels = float(score), int(pixels)
        # instances below the threshold never join the ROI: let the model drop them early
        settings = PredictionSettings(conf=self.score, max_det=100, retina_masks=True)
        self.model = UltralyticsModel(model, want_masks=True, settings=settings)
        self._warm = False

    def warm_up(self) -> None:
        """Build the inference backend on a small synthetic image, so no timing includes it."""
        import numpy as np

        if not self._warm:
            y, x = np.mgrid[0:64, 0:64]
            self.model.predict(np.stack([x * 4, y * 4, (x + y) * 2], axis=2).astype(np.uint8))
            self._warm = True

    @property
    def key(self) -> str:
        """Names the model file and the settings; safe in a path and a version string."""
        stem = "".join(c if c.isalnum() or c in "._-" else "_" for c in self.model.path.stem)
        return f"{stem}-{self.model.sha256[:12]}-s{self.score:g}-d{self.pixels}"

    def predict(self, image: np.ndarray) -> RoiPrediction:
        import numpy as np

        self.warm_up()
        t0 = time.perf_counter()
        det = self.model.predict(image)
        keep = det.scores >= self.score
        masks = det.masks[keep] if det.masks is not None else np.zeros((0, *image.shape[:2]))
        roi = masks.any(axis=0) if len(masks) else np.zeros(image.shape[:2], bool)
        roi = dilate(roi, self.pixels)
        return RoiPrediction(roi, time.perf_counter() - t0, int(keep.sum()))


class RoiCache:
    """Predicted ROI masks of one ROI source (``key``) under ``RUN_DIR/roi/KEY``."""

    def __init__(self, run_dir: str | os.PathLike, key: str) -> None:
        self.key = key
        self.folder = Path(run_dir) / "roi" / key

    def _png(self, image_id: int) -> Path:
        return self.folder / f"{int(image_id):012d}.png"

    def has(self, image_id: int) -> bool:
        return self._png(image_id).is_file() and self._png(image_id).with_suffix(
            ".json").is_file()

    def put(self, image_id: int, pred: RoiPrediction) -> None:
        """Write the mask (1-bit PNG) and its note, each atomically; the note goes last."""
        import numpy as np
        from PIL import Image

        from bench.runner import write_atomic

        buf = io.BytesIO()
        Image.fromarray(pred.mask.astype(np.uint8) * 255).convert("1").save(buf, "PNG")
        write_atomic(self._png(image_id), buf.getvalue())
        note = {"image_id": int(image_id), "seconds": pred.seconds,
                "instances": pred.instances, "roi_fraction": float(pred.mask.mean())}
        write_atomic(self._png(image_id).with_suffix(".json"), json.dumps(note).encode())

    def get(self, image_id: int, shape: tuple[int, int]) -> np.ndarray:
        """The cached mask of ``image_id``; RoiError when it is missing or does not fit."""
        import numpy as np
        from PIL import Image

        path = self._png(image_id)
        if not self.has(image_id):
            raise RoiError(f"no predicted ROI for image {image_id} in {self.folder}; rerun "
                           "bench run with the same --roi options to make it")
        try:
            with Image.open(path) as im:
                mask = np.array(im.convert("L")) > 127
        except OSError as exc:
            raise RoiError(f"predicted ROI {path} is unreadable ({exc}); delete it and rerun "
                           "to predict it again") from exc
        if mask.shape != tuple(shape):
            raise RoiError(f"predicted ROI {path} is {mask.shape[1]}×{mask.shape[0]}, the image "
                           f"{shape[1]}×{shape[0]}; delete it and rerun to predict it again")
        return mask

    def note(self, image_id: int) -> dict:
        return json.loads(self._png(image_id).with_suffix(".json").read_text())


def predict_missing(cache: RoiCache, predictor: RoiPredictor, dataset,
                    image_ids: Iterable[int],
                    on_image: Callable[[], None] | None = None) -> tuple[int, int, list[float]]:
    """Predict and cache the ROI of every image not cached yet.

    Returns (computed, reused, model seconds of the computed ones). A failing image raises
    RoiError naming it: everything predicted before it stays cached.
    """
    computed, reused, seconds = 0, 0, []
    for image_id in image_ids:
        if cache.has(image_id):
            reused += 1
        else:
            try:
                sample = dataset.load(image_id)
                pred = predictor.predict(sample.image)
            except Exception as exc:
                raise RoiError(f"predicting the ROI of image {image_id} failed: "
                               f"{type(exc).__name__}: {exc}") from exc
            cache.put(image_id, pred)
            computed += 1
            seconds.append(pred.seconds)
        if on_image is not None:
            on_image()
    return computed, reused, seconds

