"""How good and how costly is a predicted ROI (``bench run --roi pred``)?

On the shared COCO val2017 images, for one segmentation model:

* **agreement with the GT ROI** (union of the instance masks) for each score threshold and
  dilation: IoU, recall (share of GT ROI pixels the predicted ROI covers; a missed object
  gets background quality), and the share of the picture the predicted ROI takes (rate the
  ROI costs). Pooled over images (Σ intersections / Σ unions). The model runs once per image
  at the lowest threshold; the higher thresholds are subsets of its instances.
* **encode-side time**: the ROI model's time per image (inference and mask union, after a
  warm-up) next to the encode time of a codec (default ``ggm`` at q5, one thread, as
  ``bench run`` codes), and the ROI model's share of the two together.

Run: ``python benchmarks/roi_pred.py [--limit 79] [--codec ggm --quality q5]
[--model ../shared/models/yolo11n-seg_full_integer_quant.tflite]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

from bench.data.coco import CocoDataset
from bench.registry import create_codec
from bench.roi_pred import DEFAULT_DILATE, DEFAULT_SCORE, RoiPredictor, dilate

SHARED = Path(__file__).resolve().parents[2] / "shared"
SCORES = (0.1, 0.25, 0.4, 0.5)
DILATIONS = (0, 4, 8, 16)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    models = Path(os.environ.get("BENCH_MODELS_DIR") or SHARED / "models")
    ap.add_argument("--model", default=str(models / "yolo11n-seg_full_integer_quant.tflite"))
    ap.add_argument("--data-root", default=os.environ.get("BENCH_DATA_ROOT")
                    or str(SHARED / "data" / "coco"))
    ap.add_argument("--limit", type=int, default=79)
    ap.add_argument("--codec", default="ggm", help="codec whose encode time is compared")
    ap.add_argument("--quality", default="q5")
    args = ap.parse_args()

    data = CocoDataset(args.data_root, "val2017", limit=args.limit)
    predictor = RoiPredictor(args.model, min(SCORES), 0)  # all instances, for the table
    deployed = RoiPredictor(args.model)  # default settings, as bench run --roi pred: timed
    codec = create_codec(args.codec, roi="gt") if args.codec in ("ggm", "gaussian-roi") \
        else create_codec(args.codec)
    from bench.runner import load_codec

    load_codec(codec)
    inter = {(s, d): 0 for s in SCORES for d in DILATIONS}
    union, area = dict(inter), dict(inter)
    gt_area = pixels = 0
    roi_s, enc_s = [], []
    for sample in data:
        gt = sample.roi if sample.roi is not None else np.zeros(sample.image.shape[:2], bool)
        pred = deployed.predict(sample.image)
        roi_s.append(pred.seconds)
        t0 = time.perf_counter()
        codec.encode_source(sample.image, pred.mask, args.quality, sample.source)
        enc_s.append(time.perf_counter() - t0)
        det = predictor.model.predict(sample.image)
        masks = det.masks if det.masks is not None else np.zeros((0, *gt.shape), bool)
        gt_area += int(gt.sum())
        pixels += gt.size
        for s in SCORES:
            keep = masks[det.scores >= s]
            base = keep.any(axis=0) if len(keep) else np.zeros(gt.shape, bool)
            for d in DILATIONS:
                pred = dilate(base, d)
                inter[s, d] += int((pred & gt).sum())
                union[s, d] += int((pred | gt).sum())
                area[s, d] += int(pred.sum())
    print(f"{len(data)} val2017 images, model {Path(args.model).name}; GT ROI covers "
          f"{gt_area / pixels:.1%} of the pixels")
    print(f"{'score':>6} {'dilate':>6} {'IoU':>6} {'recall':>7} {'ROI area':>9}")
    for s in SCORES:
        for d in DILATIONS:
            mark = "  <- default" if (s, d) == (DEFAULT_SCORE, DEFAULT_DILATE) else ""
            print(f"{s:6.2f} {d:6d} {inter[s, d] / union[s, d]:6.3f} "
                  f"{inter[s, d] / max(gt_area, 1):7.3f} {area[s, d] / pixels:9.1%}{mark}")
    r, e = statistics.median(roi_s), statistics.median(enc_s)
    share = [a / (a + b) for a, b in zip(roi_s, enc_s, strict=True)]
    print(f"encode side per image (medians): ROI model {r:.3f} s, {args.codec} {args.quality} "
          f"encode {e:.3f} s; ROI model share of the two {statistics.median(share):.1%} "
          f"(range {min(share):.1%}–{max(share):.1%})")


if __name__ == "__main__":
    main()
