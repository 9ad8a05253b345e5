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
        """Union of all instance masks (polygons and RLE, crowd included) as H×W bool.

        The union is taken on the run-length encodings (pycocotools ``merge``), which is
        the same set of pixels as OR-ing the decoded masks, and decoded once.
        """
        from pycocotools import mask as mask_utils

        info = self.info(image_id)
        h, w = int(info["height"]), int(info["width"])
        rles = []
        for ann in self.annotations(image_id):
            if ann.get("segmentation"):
                rle = self.coco.annToRLE(ann)
                if list(rle["size"]) != [h, w]:  # merge() would silently give 0×0
                    raise DataError(
                        f"annotation {ann['id']} of image {image_id} in {self.annotation_file}"
                        f" has an RLE mask of size {rle['size']}, but the image entry says "
                        f"height {h}, width {w}; fix the annotation file"
                    )
                rles.append(rle)
        if not rles:
            return np.zeros((h, w), dtype=bool)
        union = mask_utils.decode(mask_utils.merge(rles, intersect=0))
        return np.ascontiguousarray(union, dtype=bool)

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
    _validate(data, path, split)
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


#: (field, test, what it must be) per section of an instances file: what pycocotools
#: indexes, what bench reads, and what COCOeval scores (the COCO data format,
#: https://cocodataset.org/#format-data). Optional fields are checked where present.
_REQUIRED = {
    "images": (
        ("id", _is_int, "an integer"),
        ("file_name", lambda v: isinstance(v, str) and v != "", "a non-empty string"),
        ("width", lambda v: _is_int(v) and v > 0, "a positive integer"),
        ("height", lambda v: _is_int(v) and v > 0, "a positive integer"),
    ),
    "annotations": (
        ("id", _is_int, "an integer"),
        ("image_id", _is_int, "an integer"),
        ("category_id", _is_int, "an integer"),
    ),
    "categories": (
        ("id", _is_int, "an integer"),
        ("name", lambda v: isinstance(v, str), "a string"),
    ),
}
_OPTIONAL = {
    "annotations": (
        ("bbox", lambda v: isinstance(v, list) and len(v) == 4 and all(map(_is_number, v)),
         "a list of 4 numbers [x, y, width, height]"),
        ("area", _is_number, "a number"),
        ("iscrowd", lambda v: v in (0, 1) and not isinstance(v, float), "0 or 1"),
        ("segmentation", lambda v: isinstance(v, (list, dict)),
         "a list of polygons or an RLE object"),
    ),
}


def _show(value) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def _validate(data, path: Path, split: str) -> None:
    """Check the structure of a parsed instances file; raise DataError at the first fault.

    The message names the file, the offending entry (``images[3]``) and what it should be,
    so a hand-edited or truncated file is fixed at the right place instead of failing with
    a TypeError deep inside pycocotools.
    """
    fix = (f"correct the file there, or fetch it again with `bench data fetch coco --split "
           f"{split}` (the COCO format: https://cocodataset.org/#format-data)")
    where = f"annotation file {path}"
    if not isinstance(data, dict):
        raise DataError(f"{where} is not a COCO instances file: its top level is "
                        f"{_show(data)}, not an object with images, annotations and "
                        f"categories; {fix}")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise DataError(f"{where} is not a COCO instances file (missing "
                        f"{', '.join(missing)}); {fix}")
    for section, required in _REQUIRED.items():
        entries = data[section]
        if not isinstance(entries, list):
            raise DataError(f"{where}: {section!r} is {_show(entries)}, not a list of "
                            f"objects; {fix}")
        seen: dict[int, int] = {}
        for i, entry in enumerate(entries):
            name = f"{section}[{i}]"
            if not isinstance(entry, dict):
                raise DataError(f"{where}: {name} is {_show(entry)}, not an object with "
                                f"{', '.join(k for k, _, _ in required)}; {fix}")
            for key, ok, what in required:
                if key not in entry:
                    raise DataError(f"{where}: {name} {_show(entry)} has no {key!r}; {fix}")
                if not ok(entry[key]):
                    raise DataError(f"{where}: {name} has {key!r} = {_show(entry[key])}, "
                                    f"expected {what}; {fix}")
            for key, ok, what in _OPTIONAL.get(section, ()):
                if key in entry and not ok(entry[key]):
                    raise DataError(f"{where}: {name} has {key!r} = {_show(entry[key])}, "
                                    f"expected {what}; {fix}")
            first = seen.setdefault(entry["id"], i)
            if first != i:
                raise DataError(f"{where}: {name} repeats id {entry['id']} of "
                                f"{section}[{first}]; ids must be unique; {fix}")


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
