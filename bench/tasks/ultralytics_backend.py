"""Ultralytics YOLO as a task backend: any model ``ultralytics.YOLO`` loads.

``.pt`` names (``yolov8n.pt``, ``yolo11n-seg.pt``) are downloaded by Ultralytics on first
use where there is internet; exported ``.onnx`` / ``.tflite`` files load by path (TFLite
through ``ai-edge-litert``, ONNX through ``onnxruntime``). Class index *i* of a COCO model is
the *i*-th COCO category in ascending id order; :meth:`UltralyticsModel.check_categories`
checks the names so a model trained on other classes is never scored silently.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.tasks.base import PredictionSettings, TaskError

_MODEL_SUFFIXES = (".pt", ".onnx", ".tflite", ".torchscript", ".engine", ".mlpackage")


@dataclass
class Detections:
    """One image's predictions in original pixel coordinates."""

    boxes_xyxy: np.ndarray  # N×4 float
    scores: np.ndarray  # N
    classes: np.ndarray  # N int, model class indices
    masks: np.ndarray | None  # N×H×W bool at the original resolution, or None


def file_sha256(path: Path) -> str:
    """sha256 of a model file, recorded with every score."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def resolve_model_file(spec: str) -> Path | None:
    """The local file a model spec names, or None for a name Ultralytics should download."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path.resolve()
    if path.is_dir():
        raise TaskError(f"model {spec} is a directory; pass the model file itself")
    if len(path.parts) > 1 or path.suffix not in (".pt",):
        raise TaskError(
            f"model file {spec} not found; pass the path of an Ultralytics .pt, .onnx or "
            ".tflite model (or a released name such as yolov8n.pt to download it)"
        )
    if os.environ.get("YOLO_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise TaskError(
            f"model {spec} is not a local file and downloads are off (YOLO_OFFLINE is set); "
            "pass --model with the path of a local model file"
        )
    return None


class UltralyticsModel:
    """A loaded YOLO model with a fixed task ('detect' or 'segment') and settings."""

    def __init__(self, spec: str, want_masks: bool, settings: PredictionSettings):
        self.spec = spec
        self.settings = settings
        self.want_masks = want_masks
        local = resolve_model_file(spec)
        try:
            from ultralytics import YOLO
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise TaskError("the ultralytics package is missing: pip install ultralytics") from exc
        try:
            self.model = YOLO(str(local) if local else spec)
        except Exception as exc:  # ultralytics raises many types for a non-model file
            raise TaskError(
                f"cannot load model {spec}: {type(exc).__name__}: {exc}; pass an "
                "Ultralytics .pt, .onnx or .tflite model file"
            ) from exc
        self.path = local or Path(self.model.ckpt_path or spec)
        self.task = self.model.task
        if self.task not in ("detect", "segment"):
            raise TaskError(f"model {spec} is a {self.task!r} model; bench needs detect or "
                            "segment models")
        if want_masks and self.task != "segment":
            raise TaskError(f"model {spec} is a {self.task} model and predicts no masks; "
                            "pass an instance-segmentation model (e.g. yolo11n-seg.pt)")
        self.sha256 = file_sha256(self.path) if self.path.is_file() else "unknown"
        self.names = self._names()

    def _names(self) -> dict[int, str]:
        """Class names; reading them builds the inference backend, which validates the file."""
        try:
            names = self.model.names
        except Exception as exc:  # exported models are parsed only now
            raise TaskError(
                f"cannot load model {self.spec}: {type(exc).__name__}: {exc}; pass an "
                "Ultralytics .pt, .onnx or .tflite model file"
            ) from exc
        return {int(k): str(v) for k, v in dict(names).items()}

    def check_categories(self, categories: list[dict]) -> dict[int, int]:
        """Map class index → COCO category id after checking that every name agrees."""
        cats = sorted(categories, key=lambda c: c["id"])
        mismatched = [(i, self.names.get(i), c["name"]) for i, c in enumerate(cats)
                      if self.names.get(i) != c["name"]]
        if len(self.names) != len(cats) or mismatched:
            sample = ", ".join(f"class {i}: model {m!r} vs data {d!r}" for i, m, d in
                               mismatched[:3])
            raise TaskError(
                f"model {self.spec} has {len(self.names)} classes that do not match the data "
                f"set's {len(cats)} categories ({sample or 'different counts'}); use a model "
                "trained on COCO's 80 classes"
            )
        return {i: int(c["id"]) for i, c in enumerate(cats)}

    def predict(self, image: np.ndarray) -> Detections:
        """Predictions for an H×W×3 uint8 RGB image (Ultralytics wants BGR arrays)."""
        s = self.settings
        try:
            (res,) = self.model.predict(
                np.ascontiguousarray(image[:, :, ::-1]), conf=s.conf, iou=s.iou,
                max_det=s.max_det, retina_masks=s.retina_masks, verbose=False)
        except Exception as exc:
            raise TaskError(f"model {self.spec} failed: {type(exc).__name__}: {exc}") from exc
        boxes = res.boxes
        masks = None
        if self.want_masks:
            if res.masks is None:
                masks = np.zeros((0, *image.shape[:2]), bool)
            else:
                masks = res.masks.data.cpu().numpy().astype(bool)
            if masks.shape[1:] != image.shape[:2]:
                raise TaskError(f"model {self.spec} returned {masks.shape[1:]} masks for a "
                                f"{image.shape[:2]} image; masks must be at original size")
        return Detections(boxes_xyxy=boxes.xyxy.cpu().numpy().astype(np.float64),
                          scores=boxes.conf.cpu().numpy().astype(np.float64),
                          classes=boxes.cls.cpu().numpy().astype(np.int64), masks=masks)
