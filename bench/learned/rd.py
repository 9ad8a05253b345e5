"""Rate–distortion numbers of a loaded model for the model card (real bitstreams).

Uniform quality on Kodak (``roi="none"``) and ROI coding on COCO val2017 images (the ROI is
the union of instance masks); bpp counts every byte over the original pixels.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from bench.learned.coding import decode_image, encode_image
from bench.learned.qmap import GRID_NAMES, grid_point
from bench.metrics import region_psnrs


def rd_points(model, images: list[tuple[np.ndarray, np.ndarray | None]], mode: str,
              qualities: tuple[str, ...] = GRID_NAMES) -> list[dict]:
    """Mean bpp, PSNR (and ROI/background PSNR for ``mode="gt"``) per grid point."""
    rows = []
    for name in qualities:
        point = grid_point(name)
        acc = {"bpp": [], "psnr": [], "roi_psnr": [], "bg_psnr": []}
        for image, roi in images:
            data = encode_image(model, image, roi if mode == "gt" else None, point, mode)
            recon = decode_image(model, data)
            full, r, b, _ = region_psnrs(image, recon, roi if mode == "gt" else None)
            acc["bpp"].append(8 * len(data) / (image.shape[0] * image.shape[1]))
            acc["psnr"].append(full)
            acc["roi_psnr"].append(r)
            acc["bg_psnr"].append(b)
        row = {"quality": name, "images": len(images)}
        for key, values in acc.items():
            finite = [v for v in values if math.isfinite(v)]
            if finite:
                row[key] = round(float(np.mean(finite)), 4)
        rows.append(row)
    return rows


def kodak_images(directory: str | Path, limit: int | None = None):
    from bench.data.images import read_rgb

    paths = sorted(Path(directory).glob("kodim*.png"))[:limit]
    return [(read_rgb(p)[0], None) for p in paths]


def coco_images(root: str | Path | None, split: str = "val2017", limit: int | None = None):
    """(picture, GT ROI) of the first ``limit`` images of ``split`` under ``root`` (None:
    ``$BENCH_DATA_ROOT``, else the shared COCO subset beside the repository, as the
    benchmarks' ``--help`` says)."""
    from bench.data.coco import CocoDataset
    from bench.report.check import default_data_root

    ds = CocoDataset(root if root is not None else default_data_root(), split, limit=limit)
    return [(s.image, s.roi) for s in ds]


def judged_pictures(root: str | Path | None, limit: int | None = None):
    """The COCO val2017 pictures the learned-codec judgements code (``benchmarks/learned_rd.py``
    and its kin): the first ``limit`` with any object, so that every one has an ROI to code
    in ROI mode, each as (picture, GT ROI)."""
    return [(img, roi) for img, roi in coco_images(root, "val2017", limit)
            if roi is not None and roi.any()]
