"""COCO in its official layout, read with pycocotools.

``<root>/<split>/*.jpg`` and ``<root>/annotations/instances_<split>.json``. The root comes
from ``--data-root``, else ``$BENCH_DATA_ROOT``, else ``$XDG_CACHE_HOME/bench/coco``
(``~/.cache/bench/coco``), where ``bench data fetch coco`` puts it.

A :class:`Sample` carries the RGB image, its ids, its annotations and the ROI mask: the
union of all instance masks of the image (crowd RLE included; empty for an image without
objects).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.data.images import ImageReadError, read_rgb


class DataError(ValueError):
    """The data set cannot be used as given; the message names the file and the fix."""


@dataclass
class Sample:
    """One image of the data set, ready for a codec."""

    image_id: int
    file_name: str
    image: np.ndarray  # H×W×3 uint8 RGB
    roi: np.ndarray  # H×W bool, union of instance masks
    annotations: list[dict] = field(default_factory=list)
    source: bytes = b""  # the image file's bytes (the ``original`` codec's bitstream)

    @property
    def pixels(self) -> int:
        """Number of pixels W·H, the denominator of bpp."""
        return int(self.image.shape[0] * self.image.shape[1])


def default_root() -> Path:
    """The per-user cache directory used when neither option nor environment names a root."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "bench" / "coco"


def resolve_root(data_root: str | os.PathLike | None = None) -> Path:
    """``data_root`` if given, else ``$BENCH_DATA_ROOT``, else :func:`default_root`."""
    if data_root:
        return Path(data_root).expanduser()
    env = os.environ.get("BENCH_DATA_ROOT")
    return Path(env).expanduser() if env else default_root()


def annotation_path(root: Path, split: str) -> Path:
    """Where the instance annotations of ``split`` live under ``root``."""
    return root / "annotations" / f"instances_{split}.json"


class CocoDataset:
    """The images of one COCO split, selected and ordered by image id.

    ``image_ids`` selects images (their order does not matter: samples always come in
    ascending id order, so runs are stable); ``limit`` keeps the first N of the selection.
    """

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        split: str = "val2017",
        *,
        image_ids: list[int] | None = None,
        limit: int | None = None,
    ):
        self.root = resolve_root(root)
        self.split = split
        self.image_dir = self.root / split
        self.annotation_file = annotation_path(self.root, split)
        self.coco = _load_coco(self.annotation_file, self.image_dir, split)
        self.ids = _select_ids(sorted(self.coco.imgs), image_ids, limit, self.annotation_file)

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self):
        return (self.load(i) for i in self.ids)

    def info(self, image_id: int) -> dict:
        """The annotation file's entry for an image (file name, width, height, …)."""
        return self.coco.imgs[image_id]

    def image_path(self, image_id: int) -> Path:
        """The image's file, checked to lie inside the split's image folder."""
        name = str(self.info(image_id).get("file_name", ""))
        rel = Path(name)
        if not name or rel.is_absolute() or ".." in rel.parts:
            raise DataError(
                f"image {image_id}: file_name {name!r} in {self.annotation_file} escapes the "
                f"image folder {self.image_dir}; fix the annotation file"
            )
        path = (self.image_dir / rel).resolve()
        if not path.is_relative_to(self.image_dir.resolve()):
            raise DataError(
                f"image {image_id}: file_name {name!r} in {self.annotation_file} resolves to "
                f"{path}, outside the image folder {self.image_dir}; fix the annotation file"
            )
        return path

    def annotations(self, image_id: int) -> list[dict]:
        """All instance annotations of an image, crowd ones included."""
        return [self.coco.anns[a] for a in self.coco.getAnnIds(imgIds=[image_id], iscrowd=None)]

    def roi_mask(self, image_id: int) -> np.ndarray:
        """Union of all instance masks (polygons and RLE, crowd included) as H×W bool."""
        info = self.info(image_id)
        mask = np.zeros((int(info["height"]), int(info["width"])), dtype=bool)
        for ann in self.annotations(image_id):
            if ann.get("segmentation"):
                mask |= self.coco.annToMask(ann).astype(bool)
        return mask

    def load(self, image_id: int) -> Sample:
        """Read and decode one image and build its ROI mask.

        Raises :class:`DataError` or :class:`~bench.data.images.ImageReadError` naming the
        file when the image cannot be used; the harness turns these into error rows.
        """
        path = self.image_path(image_id)
        info = self.info(image_id)
        image, source = read_rgb(path)
        h, w = image.shape[:2]
        if (h, w) != (int(info["height"]), int(info["width"])):
            raise ImageReadError(
                f"image {path} is {w}×{h} but {self.annotation_file} says "
                f"{info['width']}×{info['height']}; the file does not belong to these annotations"
            )
        return Sample(
            image_id=image_id,
            file_name=str(info["file_name"]),
            image=image,
            roi=self.roi_mask(image_id),
            annotations=self.annotations(image_id),
            source=source,
        )


def _load_coco(path: Path, image_dir: Path, split: str):
    """Parse and index an instances file, with errors that say what to do."""
    from pycocotools.coco import COCO

    hint = f"run `bench data fetch coco --split {split}` or point --data-root at a COCO copy"
    if not path.is_file():
        raise DataError(f"annotation file {path} not found; {hint}")
    if not image_dir.is_dir():
        raise DataError(f"image folder {image_dir} not found; {hint}")
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"annotation file {path} is not valid JSON ({exc}); {hint}") from exc
    missing = [k for k in ("images", "annotations", "categories") if k not in data]
    if not isinstance(data, dict) or missing:
        raise DataError(
            f"annotation file {path} is not a COCO instances file (missing "
            f"{', '.join(missing) if isinstance(data, dict) else 'a top-level object'}); {hint}"
        )
    for img in data["images"]:
        if not {"id", "file_name", "width", "height"} <= set(img):
            raise DataError(
                f"annotation file {path}: image entry {str(img)[:80]} lacks id, file_name, "
                "width or height; it is not a COCO instances file"
            )
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _select_ids(
    all_ids: list[int], wanted: list[int] | None, limit: int | None, source: Path
) -> list[int]:
    if wanted:
        known = set(all_ids)
        unknown = [i for i in wanted if i not in known]
        if unknown:
            raise DataError(
                f"image id(s) {', '.join(map(str, unknown[:10]))} not in {source}; "
                "check --image-ids"
            )
        ids = sorted(set(wanted))
    else:
        ids = list(all_ids)
    if limit is not None:
        if limit < 1:
            raise DataError(f"--limit must be at least 1, got {limit}")
        ids = ids[:limit]
    return ids
