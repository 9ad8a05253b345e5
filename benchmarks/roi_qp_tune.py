"""hevc's ``qp`` ROI method: what the block size of its QP-offset map and the background
offset do, side by side on the same pictures.

For each val2017 picture whose objects cover 10-60 % of the area, uniform hevc and the ROI
variants (``--block`` sizes x ``--deltas`` background offsets) are coded at the grid points
``--qualities``; the table gives, per variant, the BD-rate on ROI-PSNR and on PSNR against
uniform hevc (pooled bpp, mean PSNR over the pictures, pchip) and the mean ROI-PSNR loss
against uniform hevc at the same QP (what the ROI blocks lose to their neighbours).

libx265 takes one offset per 16x16 block from ffmpeg but applies the QP per quantisation
group (32x32 at ``preset=veryslow``), averaging the offsets inside it, so with 16x16 blocks a
group only partly in the ROI is coded coarser than the grid QP; marking whole 32x32 groups
keeps the ROI at its QP (``bench/codecs/roi_qp.py``).

This measures picture quality only. For task scores at one offset over a whole run, use
``bench run --codec hevc --roi-method qp --roi-qp-delta N --task detection`` into one run
directory and compare the labels with ``bench report``.

Usage::

    python benchmarks/roi_qp_tune.py --images 6 --blocks 16,32 --deltas 6,12,20
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

QUALITIES = "qp42,qp37,qp32,qp27,qp22,qp17"


def pictures(data_root: str, count: int) -> list[int]:
    """The first ``count`` val2017 ids (in id order) whose GT ROI covers 10-60 % of the area."""
    from bench.data.coco import CocoDataset

    dataset = CocoDataset(data_root, "val2017")
    out = []
    for image_id in dataset.ids:
        cover = float(dataset.load(image_id).roi.mean())
        if 0.10 <= cover <= 0.60:
            out.append(image_id)
        if len(out) == count:
            break
    return out


def code_one(job: tuple) -> tuple:
    """``(variant, quality, image id, bits, pixels, PSNR, ROI-PSNR)`` of one coding."""
    data_root, image_id, variant, quality = job
    from bench.codecs.hevc import HevcCodec
    from bench.data.coco import CocoDataset
    from bench.metrics import region_psnrs

    sample = CocoDataset(data_root, "val2017", image_ids=[image_id]).load(image_id)
    if variant == "uniform":
        codec, name = HevcCodec(), quality
    else:
        block, delta = variant
        codec = HevcCodec(roi_method="qp", roi_qp_delta=delta)
        codec.roi_block = block
        name = f"{quality}-d{delta}"
    data = codec.encode(sample.image, sample.roi, name)
    recon = codec.decode(data)
    psnr, roi_psnr, _bg, _notes = region_psnrs(sample.image, recon, sample.roi)
    h, w = sample.image.shape[:2]
    return variant, quality, image_id, 8 * len(data), h * w, psnr, roi_psnr


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=6)
    p.add_argument("--blocks", default="16,32", help="block sizes of the offset map")
    p.add_argument("--deltas", default="12", help="background QP offsets")
    p.add_argument("--qualities", default=QUALITIES, help="hevc grid points, low to high rate")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--data-root", default=os.environ.get(
        "BENCH_DATA_ROOT", str(Path(__file__).resolve().parents[2] / "shared/data/coco")))
    args = p.parse_args(argv)
    from bench.report.bd import Curve, bd

    ids = pictures(args.data_root, args.images)
    qualities = args.qualities.split(",")
    variants = ["uniform"] + [(int(b), int(d)) for b in args.blocks.split(",")
                              for d in args.deltas.split(",")]
    jobs = [(args.data_root, i, v, q) for v in variants for q in qualities for i in ids]
    print(f"{len(ids)} pictures {ids}, {len(variants)} variants, {len(jobs)} codings",
          flush=True)
    with ProcessPoolExecutor(args.jobs) as pool:
        done = list(pool.map(code_one, jobs))
    by = {}
    for variant, quality, _i, bits, pixels, psnr, roi_psnr in done:
        by.setdefault((variant, quality), []).append((bits, pixels, psnr, roi_psnr))

    def curve(variant, column):
        rate, metric = [], []
        for q in qualities:
            rows = by[(variant, q)]
            rate.append(sum(r[0] for r in rows) / sum(r[1] for r in rows))
            metric.append(statistics.fmean(r[column] for r in rows))
        return Curve(tuple(rate), tuple(metric), tuple(qualities))

    anchor = {c: curve("uniform", c) for c in (2, 3)}
    print(f"{'variant':>16} {'BD ROI-PSNR':>12} {'BD PSNR':>9} "
          f"{'ROI-PSNR vs uniform, same QP':>30}")
    for variant in variants[1:]:
        roi_bd = bd(anchor[3], curve(variant, 3)).bd_rate
        all_bd = bd(anchor[2], curve(variant, 2)).bd_rate
        loss = statistics.fmean(
            curve(variant, 3).metric[k] - anchor[3].metric[k] for k in range(len(qualities)))
        name = f"block {variant[0]} d{variant[1]}"
        print(f"{name:>16} {roi_bd:+11.1f}% {all_bd:+8.1f}% {loss:+29.2f} dB"
              if math.isfinite(roi_bd) else f"{name:>16} no BD-rate")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
