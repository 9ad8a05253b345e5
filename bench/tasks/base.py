"""The contract of a task: predict COCO-format results for an image, name its COCO metrics.

A task owns a model (through a backend such as :mod:`bench.tasks.ultralytics_backend`) and
turns one RGB image into a list of COCO result dicts (``image_id``, ``category_id``,
``bbox`` as x, y, w, h in original pixels, ``score`` and, for masks, ``segmentation`` as
RLE). Scoring those results is the job of :mod:`bench.tasks.cocoeval`, shared by all tasks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np


class TaskError(RuntimeError):
    """A task or its model cannot be used; the message names the model or image."""


@dataclass(frozen=True)
class PredictionSettings:
    """COCO-evaluation prediction settings, stored with every score.

    Confidence 0.001 and at most 100 detections per image are what COCO AP expects (AP
    integrates over the whole precision–recall curve, so low-confidence detections count);
    NMS IoU 0.7 is the value Ultralytics validates with; masks are computed at the image's
    original resolution (``retina_masks``) and encoded as RLE.
    """

    conf: float = 0.001
    iou: float = 0.7
    max_det: int = 100
    retina_masks: bool = True

    def as_dict(self) -> dict:
        return asdict(self)


class Task(ABC):
    """Base class of tasks: ``name``, the COCO ``iou_types`` it is scored on, ``predict``."""

    name: ClassVar[str] = ""
    #: pycocotools iouType values this task is scored with, e.g. ("bbox",) or ("bbox", "segm")
    iou_types: ClassVar[tuple[str, ...]] = ()
    #: model used when the user names none (downloaded by the backend on first use)
    default_model: ClassVar[str] = ""
    #: columns the run summary shows: (column id, header, IoU type, COCO stat name)
    summary_columns: ClassVar[tuple[tuple[str, str, str, str], ...]] = ()

    @abstractmethod
    def model_key(self) -> str:
        """Identifies model file and settings; results are cached and scored per key."""

    @abstractmethod
    def model_info(self) -> dict:
        """Provenance stored with every score: model path, sha256, backend, settings."""

    @abstractmethod
    def check_categories(self, categories: list[dict]) -> None:
        """Raise TaskError unless the model's classes are the data set's categories."""

    @abstractmethod
    def predict(self, image: np.ndarray, image_id: int) -> list[dict]:
        """COCO result dicts for one H×W×3 uint8 RGB image."""
