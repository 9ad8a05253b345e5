"""Shared fixtures: offline settings, the shared COCO subset, and tiny generated data sets."""

from __future__ import annotations

import atexit
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.codecs.conformance import natural_image  # noqa: F401  (the tests' picture)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

# Nothing may be downloaded or written to $HOME during tests.
_TMP = Path(tempfile.mkdtemp(prefix="bench-tests-"))
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)  # one per process (xdist workers)
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", str(_TMP / "yolo"))
os.environ.setdefault("MPLCONFIGDIR", str(_TMP / "mpl"))
os.environ.setdefault("BENCH_PROGRESS", "0")


def shared_coco_root() -> Path:
    """The shared COCO val2017 subset: $BENCH_DATA_ROOT, else ../shared/data/coco."""
    return Path(os.environ.get("BENCH_DATA_ROOT") or SHARED / "data" / "coco")


@pytest.fixture(scope="session")
def coco_root() -> Path:
    root = shared_coco_root()
    if not (root / "annotations" / "instances_val2017.json").is_file():
        pytest.skip(f"shared COCO subset not found at {root} (set BENCH_DATA_ROOT)")
    return root


def shared_kodak_dir() -> Path:
    """Kodak: $BENCH_KODAK_DIR, else ../shared/data/kodak (it may be absent)."""
    return Path(os.environ.get("BENCH_KODAK_DIR") or SHARED / "data" / "kodak")


@pytest.fixture(scope="session")
def kodak_dir() -> Path:
    path = shared_kodak_dir()
    if not (path / "kodim01.png").is_file():
        pytest.skip(f"Kodak not found at {path} (set BENCH_KODAK_DIR)")
    return path


def jpeg_bytes(image: np.ndarray, quality: int = 95) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def write_coco(root: Path, images: list[dict], annotations: list[dict],
               split: str = "val2017") -> Path:
    """Write a COCO instances file (and the image folder) for ``images`` under ``root``.

    Each image dict holds the COCO fields plus optional ``data`` (file bytes to write).
    """
    (root / split).mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    entries = []
    for img in images:
        img = dict(img)
        data = img.pop("data", None)
        if data is not None:
            (root / split / img["file_name"]).write_bytes(data)
        entries.append(img)
    doc = {
        "info": {}, "licenses": [],
        "categories": [{"id": 1, "name": "person", "supercategory": "person"}],
        "images": entries, "annotations": annotations,
    }
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    return root


def box_polygon(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


@pytest.fixture
def tiny_coco(tmp_path: Path) -> Path:
    """Four generated images: two with objects (one crowd RLE), one without, one odd-sized."""
    imgs, anns = [], []
    sizes = {1: (48, 64), 2: (40, 56), 3: (33, 45), 4: (1, 1)}
    for i, (h, w) in sizes.items():
        imgs.append({"id": i, "file_name": f"{i:012d}.jpg", "height": h, "width": w,
                     "data": jpeg_bytes(natural_image(h, w, seed=i))})
    anns.append({"id": 10, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 200.0,
                 "bbox": [4, 4, 20, 10], "segmentation": box_polygon(4, 4, 24, 14)})
    # uncompressed crowd RLE covering a 10-pixel column run in image 2 (column-major counts)
    anns.append({"id": 11, "image_id": 2, "category_id": 1, "iscrowd": 1, "area": 10.0,
                 "bbox": [0, 5, 1, 10], "segmentation": {"size": [40, 56],
                                                         "counts": [5, 10, 40 * 56 - 15]}})
    return write_coco(tmp_path / "coco", imgs, anns)


def shared_model(name: str) -> Path:
    """A model file from ../shared/models (or $BENCH_MODELS_DIR); skip when absent."""
    path = Path(os.environ.get("BENCH_MODELS_DIR") or SHARED / "models") / name
    if not path.is_file():
        pytest.skip(f"model {path} not found (set BENCH_MODELS_DIR)")
    return path


DETECTOR = "yolov8n_integer_quant.tflite"
SEGMENTER = "yolo11n-seg_full_integer_quant.tflite"
FAST_SEGMENTER = "yolov8n_320_quant_pc_ii_seg_coco-st.tflite"
