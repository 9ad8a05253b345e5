"""Rates of a learned ROI codec's quality grid, to choose the grid of a release.

For one model file, on COCO **train2017** images with objects (never the val images the
leaderboard is scored on), with the model's own rate estimate (``-log2`` likelihoods of the
hard-quantized latents, within about 1 % of the real bitstream):

* the pooled bpp of uniform quality codes 0, 5, …, 100;
* the pooled bpp of the ROI points of the current grid (``bench.learned.qmap.GRID``) and of
  any ``--roi-point ROI/BG`` pairs given;
* for each ROI point, the uniform code of the same rate (log-bpp interpolation), which is how
  a grid's uniform codes can be matched to its ROI points.

Run: ``python benchmarks/learned_grid.py --model bench/learned/weights/ggm.pt [--limit 16]
[--coverage 0.1-0.6] [--roi-point 35/0 --roi-point 45/0 …]``.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from bench.learned.checkpoint import load_model
from bench.learned.coding import model_inputs
from bench.learned.layers import single_thread
from bench.learned.qmap import GRID, GridPoint


def pooled_bpp(model, images, point: GridPoint, mode: str) -> float:
    """Σ estimated bits / Σ pixels over ``images`` at ``point``."""
    bits = pixels = 0.0
    for image, roi in images:
        x, q, q_lat, _ = model_inputs(image, roi, point, mode)
        with single_thread(), torch.inference_mode():
            out = model(x, q, q_lat)
        bits += sum(float((-torch.log2(lik)).sum()) for lik in out["likelihoods"].values())
        pixels += image.shape[0] * image.shape[1]
    return bits / pixels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="model file")
    ap.add_argument("--data-root", default=None, help="COCO root with train2017")
    ap.add_argument("--limit", type=int, default=16, help="train2017 images (default 16)")
    ap.add_argument("--coverage", default="0.1-0.6", metavar="LO-HI",
                    help="only images whose objects cover this fraction of the picture "
                         "(default 0.1-0.6: pictures where an ROI codec has a choice to make)")
    ap.add_argument("--roi-point", action="append", default=[], metavar="ROI/BG",
                    help="extra ROI point as quality codes 0..100, e.g. 35/0 (repeatable)")
    args = ap.parse_args()

    from bench.learned.rd import coco_images

    lo, hi = (float(v) for v in args.coverage.split("-"))
    model, _ = load_model(args.model)
    model.eval()
    images = [(img, roi) for img, roi in coco_images(args.data_root, "train2017", 8 * args.limit)
              if roi is not None and lo <= roi.mean() <= hi][: args.limit]
    print(f"{len(images)} train2017 images whose objects cover {lo:.0%}–{hi:.0%}; "
          "estimated rates")
    codes = list(range(0, 101, 5))
    uni = [pooled_bpp(model, images, GridPoint("u", 0, 0, c), "none") for c in codes]
    print("uniform: " + ", ".join(f"{c}:{b:.3f}" for c, b in zip(codes, uni, strict=True)))
    points = [(p.name, p.roi, p.bg) for p in GRID]
    for text in args.roi_point:
        roi, bg = (int(v) for v in text.split("/"))
        points.append((text, roi, bg))
    log_uni = np.log(uni)
    print(f"{'point':>7} {'roi':>4} {'bg':>4} {'bpp':>7} {'uniform code of equal rate':>27}")
    for name, roi, bg in points:
        bpp = pooled_bpp(model, images, GridPoint(name, roi, bg, 0), "gt")
        match = float(np.interp(np.log(bpp), log_uni, codes)) if np.all(np.diff(log_uni) > 0) \
            else float("nan")
        print(f"{name:>7} {roi:4d} {bg:4d} {bpp:7.4f} {match:27.1f}")


if __name__ == "__main__":
    main()
