"""Training crops: COCO train2017 (with instance masks) and the unannotated codec-train set.

Never val2017: :func:`training_sources` refuses it, as the benchmark evaluates on it.

Two interchangeable crop sources, both deterministic given ``(seed, step)``:

* :class:`ImageFolderSource`: reads the images from disk for every crop (random downscale
  in [0.5, 1] half of the time, random crop, horizontal flip); COCO crops carry an instance
  label map (0 = background, 1.. = instances) for the instance quality maps;
* :class:`MemorySource`: the same images decoded into memory once (with their instance
  label maps), then cropped in memory: the random downscale resizes only the crop's own
  region, so a step costs no file reading (the CPU training campaign's source);
* :class:`PackSource`: a compact *training pack* (one ``.npz``, no pickle) of pre-cut crops
  stored as JPEG (quality 92, 4:4:4) plus PNG label maps, made by :func:`make_pack`
  (``bench train --make-pack``), to carry the data to a GPU machine; sub-crops and flips
  are drawn from the stored crops.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from bench.learned.qmap import random_qmap

FORBIDDEN_SPLITS = ("val2017",)


@dataclass
class Item:
    path: Path
    image_id: int | None  # COCO id (annotated) or None


def shared_root() -> Path:
    """``$BENCH_SHARED_DATA`` or ``/work/shared/data``-style ``../shared/data`` beside the repo."""
    env = os.environ.get("BENCH_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def training_sources(coco_root: str | os.PathLike | None = None,
                     extra_dirs: list[str | os.PathLike] | None = None,
                     split: str = "train2017"):
    """The COCO dataset object (or None) and the list of training :class:`Item`."""
    if split in FORBIDDEN_SPLITS:
        raise ValueError(f"refusing to train on {split}: it is the evaluation split")
    items: list[Item] = []
    coco = None
    root = Path(coco_root) if coco_root else shared_root() / "coco"
    if (root / "annotations" / f"instances_{split}.json").is_file():
        from bench.data.coco import CocoDataset

        coco = CocoDataset(root, split)
        items += [Item(coco.image_path(i), i) for i in coco.ids]
    dirs = extra_dirs if extra_dirs is not None else [shared_root() / "codec-train"]
    for d in dirs:
        d = Path(d)
        if any(part in FORBIDDEN_SPLITS for part in d.parts):
            raise ValueError(f"refusing to train on {d}: it is the evaluation split")
        items += [Item(p, None) for p in sorted(d.glob("*")) if p.suffix.lower() in
                  (".jpg", ".jpeg", ".png")]
    if not items:
        raise FileNotFoundError(f"no training images under {root}/{split} or {dirs}")
    return coco, items


def _labels(coco, image_id: int, shape: tuple[int, int]) -> np.ndarray:
    labels = np.zeros(shape, np.uint8)
    for k, ann in enumerate(coco.annotations(image_id)[:255], start=1):
        if ann.get("segmentation"):
            mask = coco.coco.annToMask(ann).astype(bool)
            if mask.shape == shape:
                labels[mask & (labels == 0)] = k
    return labels


def _crop_pair(image: np.ndarray, labels: np.ndarray | None, size: int,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    h, w = image.shape[:2]
    if h < size or w < size:  # reflect-pad small images
        ph, pw = max(0, size - h), max(0, size - w)
        image = np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="reflect")
        if labels is not None:
            labels = np.pad(labels, ((0, ph), (0, pw)), mode="reflect")
        h, w = image.shape[:2]
    top, left = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    image = image[top: top + size, left: left + size]
    labels = None if labels is None else labels[top: top + size, left: left + size]
    if rng.random() < 0.5:
        image = image[:, ::-1]
        labels = None if labels is None else labels[:, ::-1]
    return np.ascontiguousarray(image), None if labels is None else np.ascontiguousarray(labels)


class ImageFolderSource:
    """Random crops read from the original image files."""

    def __init__(self, coco_root=None, extra_dirs=None) -> None:
        self.coco, self.items = training_sources(coco_root, extra_dirs)

    def __len__(self) -> int:
        return len(self.items)

    def describe(self) -> str:
        n_coco = sum(it.image_id is not None for it in self.items)
        return f"{n_coco} train2017 images + {len(self.items) - n_coco} codec-train images"

    def crop(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray | None]:
        item = self.items[int(rng.integers(len(self.items)))]
        with Image.open(item.path) as im:
            im = im.convert("RGB")
            labels = None
            if item.image_id is not None and self.coco is not None:
                labels = _labels(self.coco, item.image_id, (im.height, im.width))
            scale = rng.uniform(0.5, 1.0) if rng.random() < 0.5 else 1.0
            if scale < 1.0 and min(im.width, im.height) * scale >= size:
                new = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
                im = im.resize(new, Image.BICUBIC)
                if labels is not None:
                    labels = np.asarray(Image.fromarray(labels).resize(new, Image.NEAREST))
            image = np.asarray(im)
        return _crop_pair(image, labels, size, rng)


class MemorySource:
    """The training images (and COCO instance labels) decoded into memory once.

    Crops as :class:`ImageFolderSource` draws them (half of the time a random downscale in
    [0.5, 1], then a random crop and a horizontal flip), but the downscale resizes only the
    region that becomes the crop, so a crop costs a few hundred microseconds.
    """

    def __init__(self, coco_root=None, extra_dirs=None) -> None:
        coco, items = training_sources(coco_root, extra_dirs)
        self.n_coco = sum(it.image_id is not None for it in items)
        self.images: list[np.ndarray] = []
        self.labels: list[np.ndarray | None] = []
        for item in items:
            with Image.open(item.path) as im:
                image = np.asarray(im.convert("RGB"))
            self.images.append(image)
            self.labels.append(_labels(coco, item.image_id, image.shape[:2])
                               if item.image_id is not None and coco is not None else None)

    def __len__(self) -> int:
        return len(self.images)

    def describe(self) -> str:
        return (f"{self.n_coco} train2017 images + {len(self) - self.n_coco} codec-train "
                f"images (in memory)")

    def crop(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray | None]:
        i = int(rng.integers(len(self.images)))
        image, labels = self.images[i], self.labels[i]
        scale = rng.uniform(0.5, 1.0) if rng.random() < 0.5 else 1.0
        h, w = image.shape[:2]
        side = int(round(size / scale))
        if scale < 1.0 and min(h, w) >= side:
            top, left = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
            region = Image.fromarray(image[top: top + side, left: left + side])
            image = np.asarray(region.resize((size, size), Image.BICUBIC))
            if labels is not None:
                patch = Image.fromarray(labels[top: top + side, left: left + side])
                labels = np.asarray(patch.resize((size, size), Image.NEAREST))
        return _crop_pair(image, labels, size, rng)


class PackSource:
    """Crops from a training pack, decoded into memory once.

    ``holdout``: the pack's last ``holdout`` crops are never drawn for training but kept to
    measure how far training fits the pack's other crops rather than pictures in general
    (:meth:`eval_batches`): a pack is a small sample, and a GPU lease can fit it.
    """

    def __init__(self, path: str | os.PathLike, holdout: int = 0) -> None:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            jpg, jo = z["images"], z["image_offsets"]
            png, lo = z["labels"], z["label_offsets"]
            self.images = np.stack([
                np.asarray(Image.open(io.BytesIO(jpg[jo[i]: jo[i + 1]].tobytes())).convert("RGB"))
                for i in range(len(jo) - 1)])
            self.labels = np.stack([
                np.asarray(Image.open(io.BytesIO(png[lo[i]: lo[i + 1]].tobytes())))
                for i in range(len(lo) - 1)])
        self.meta = meta
        self.path = Path(path)
        if not 0 <= holdout <= len(self.images) // 2:
            raise ValueError(f"{path}: cannot hold out {holdout} of its {len(self.images)} "
                             "crops (at most half)")
        self.holdout = holdout

    def __len__(self) -> int:
        """Crops drawn for training (the held-out ones excluded)."""
        return len(self.images) - self.holdout

    def describe(self) -> str:
        """The pack itself (name, seed, all its crops), whatever is held out of it."""
        crop, sources = self.meta["crop"], self.meta["sources"]
        return (f"pack {self.path.name} (seed {self.meta.get('seed', 0)}): "
                f"{len(self.images)} crops of {crop}² ({sources})")

    def _pair(self, i: int, rng: np.random.Generator, size: int):
        labels = self.labels[i] if self.meta["annotated"][i] else None
        return _crop_pair(self.images[i], labels, size, rng)

    def crop(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray | None]:
        return self._pair(int(rng.integers(len(self))), rng, size)

    def eval_batches(self, size: int, qmap_weights: dict[str, float] | None = None,
                     batch_size: int = 8) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
        """Fixed evaluation batches (images B×H×W×3 uint8, quality maps B×H×W): ``heldout``
        from the held-out crops, ``seen`` from as many training crops, each crop with its own
        fixed sub-crop, flip and quality map, so that only the model changes between
        evaluations."""
        n = len(self.images)
        sets = {"heldout": range(n - self.holdout, n), "seen": range(self.holdout)}
        out: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        for name, indices in sets.items():
            images, qmaps = [], []
            for i in indices:
                rng = np.random.default_rng([self.meta.get("seed", 0), 4242, i])
                image, labels = self._pair(i, rng, size)
                images.append(image)
                qmaps.append(random_qmap(size, size, rng, labels, qmap_weights)[0])
            out[name] = [(np.stack(images[k: k + batch_size]),
                          np.stack(qmaps[k: k + batch_size]).astype(np.float32))
                         for k in range(0, len(images), batch_size)]
        return out


def make_pack(out: str | os.PathLike, source: ImageFolderSource, crop: int = 256,
              budget_mib: float = 60.0, quality: int = 92, seed: int = 0,
              max_crops: int | None = None, progress: bool = False) -> dict:
    """Cut random crops from ``source`` into one ``.npz`` of at most ``budget_mib`` MiB."""
    rng = np.random.default_rng([seed, 12345])
    limit = budget_mib * 2**20 - 64 * 1024  # room for offsets and meta
    jpgs, pngs, annotated = [], [], []
    total = 0
    while max_crops is None or len(jpgs) < max_crops:
        image, labels = source.crop(rng, crop)
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="JPEG", quality=quality, subsampling=0)
        lab = io.BytesIO()
        Image.fromarray(labels if labels is not None else np.zeros(image.shape[:2], np.uint8)
                        ).save(lab, format="PNG", optimize=True)
        size = len(buf.getvalue()) + len(lab.getvalue()) + 16
        if total + size > limit:
            break
        jpgs.append(buf.getvalue())
        pngs.append(lab.getvalue())
        annotated.append(labels is not None)
        total += size
        if progress and len(jpgs) % 100 == 0:
            print(f"  {len(jpgs)} crops, {total / 2**20:.1f} MiB", flush=True)
    meta = {"crop": crop, "quality": quality, "seed": seed, "count": len(jpgs),
            "annotated": annotated, "sources": source.describe()}

    def cat(blobs):
        offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
        return np.frombuffer(b"".join(blobs), np.uint8), offsets

    images, image_offsets = cat(jpgs)
    labels_arr, label_offsets = cat(pngs)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as f:
        np.savez(f, images=images, image_offsets=image_offsets, labels=labels_arr,
                 label_offsets=label_offsets,
                 meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    return {"path": str(out), "crops": len(jpgs), "mib": out.stat().st_size / 2**20}


def make_batch(source, step: int, seed: int, batch_size: int, size: int,
               qmap_weights: dict[str, float] | None = None
               ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The batch of ``step``: images (B×H×W×3 uint8), quality maps (B×H×W float32), kinds.

    Drawn from ``default_rng([seed, step])`` only, so a resumed run sees the same batches.
    ``qmap_weights``: the mix of quality-map generators (default: release 1's).
    """
    rng = np.random.default_rng([seed, step])
    images, qmaps, kinds = [], [], []
    for _ in range(batch_size):
        image, labels = source.crop(rng, size)
        q, kind = random_qmap(size, size, rng, labels, qmap_weights)
        images.append(image)
        qmaps.append(q)
        kinds.append(kind)
    return np.stack(images), np.stack(qmaps), kinds
