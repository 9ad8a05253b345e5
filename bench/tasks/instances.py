"""COCO instance tasks on an Ultralytics model: the shared body of detection and segmentation."""

from __future__ import annotations

import hashlib
import json

import numpy as np

from bench.tasks.base import PredictionSettings, Task
from bench.tasks.ultralytics_backend import UltralyticsModel


def mask_to_rle(mask: np.ndarray) -> dict:
    """COCO RLE of an H×W bool mask, with ``counts`` as text (JSON-storable)."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


class CocoInstanceTask(Task):
    """Boxes (and masks, for segmentation) from a COCO-pretrained Ultralytics model."""

    want_masks = False

    def __init__(self, model: str | None = None,
                 settings: PredictionSettings | None = None):
        self.settings = settings or PredictionSettings()
        self.model = UltralyticsModel(model or self.default_model, self.want_masks,
                                      self.settings)
        self._category_of: dict[int, int] | None = None

    def model_key(self) -> str:
        digest = hashlib.sha256(json.dumps(self.model_info(), sort_keys=True).encode())
        return f"{self.model.path.name}:{digest.hexdigest()[:16]}"

    def model_info(self) -> dict:
        return {"backend": "ultralytics", "model": self.model.path.name,
                "sha256": self.model.sha256, "model_task": self.model.task,
                "settings": self.settings.as_dict()}

    def check_categories(self, categories: list[dict]) -> None:
        self._category_of = self.model.check_categories(categories)

    def predict(self, image: np.ndarray, image_id: int) -> list[dict]:
        if self._category_of is None:
            raise RuntimeError("call check_categories() with the data set's categories first")
        det = self.model.predict(image)
        out = []
        for i in range(len(det.scores)):
            x0, y0, x1, y1 = (float(v) for v in det.boxes_xyxy[i])
            res = {"image_id": int(image_id),
                   "category_id": self._category_of[int(det.classes[i])],
                   "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
                   "score": round(float(det.scores[i]), 5)}
            if det.masks is not None:
                res["segmentation"] = mask_to_rle(det.masks[i])
            out.append(res)
        return out
