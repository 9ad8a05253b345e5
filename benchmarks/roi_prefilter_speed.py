"""Wall time of a codec's ROI variant (``--roi-method blur`` or ``qp``) against the codec.

For each ``codec[:method]`` (method ``blur``, the background pre-filter, unless given; ``qp``:
the encoder's own spatial rate control, e.g. ``hevc:qp``), on the same COCO val2017 images
with their GT ROI, codes every grid point of the uniform codec and of its ROI variant,
interleaved image by image so that machine load hits both alike, two ways:

- *codec*: encode + decode alone (the pre-filter's whole cost shows);
- *run*: what a ``bench run`` worker does for one image (:func:`bench.runner.code_unit`:
  read the image and its GT ROI, encode, decode, then the metrics: by default PSNR/ROI-PSNR
  and MS-SSIM, as ``bench run``; ``--metrics psnr`` leaves MS-SSIM out), i.e. the wall time
  a user of the variant pays.

Each image's four measurements are repeated ``--repeat`` times, interleaved, and the median
of each is kept: a JPEG round trip of a whole grid takes about 15 ms, so a single pass is at
the mercy of whatever else the machine runs. Prints the sums over the images of those
medians and their ratios (target: at most 1.2).

Run: ``python benchmarks/roi_prefilter_speed.py [--codecs jpeg,webp,hevc,hevc:qp] [--limit 8]
[--repeat 5] [--metrics psnr]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from bench import runner
from bench.data.coco import CocoDataset
from bench.labels import codec_label
from bench.registry import create_codec

SHARED = Path(__file__).resolve().parents[2] / "shared"


def round_trip_seconds(codec, sample) -> float:
    t0 = time.perf_counter()
    for quality in codec.qualities:
        codec.decode(codec.encode(sample.image, sample.roi, quality))
    return time.perf_counter() - t0


def run_seconds(unit: runner.Unit) -> float:
    t0 = time.perf_counter()
    rows = runner.code_unit(unit)
    seconds = time.perf_counter() - t0
    failed = [r.error for r in rows if r.error]
    if failed:
        raise SystemExit(f"{unit.label} failed on image {unit.image_id}: {failed[0]}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--codecs", default="jpeg,webp,hevc,hevc:qp",
                    help="comma-separated codec[:method] (method: blur, the default, or qp)")
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=5,
                    help="measurements per image and way, interleaved; the median is kept")
    ap.add_argument("--metrics", default="psnr,ms-ssim",
                    help="metrics of the run measurement, as bench run --metrics")
    ap.add_argument("--data-root", default=os.environ.get("BENCH_DATA_ROOT")
                    or str(SHARED / "data" / "coco"))
    args = ap.parse_args()
    samples = list(CocoDataset(args.data_root, "val2017", limit=args.limit))
    print(f"{len(samples)} val2017 images, every grid point, median of {args.repeat}; codec: "
          f"encode + decode; run: a bench run worker's whole work per image "
          f"(metrics {args.metrics})")
    print(f"{'codec':>8} {'method':>6} {'uniform s':>10} {'ROI variant s':>14} "
          f"{'codec ratio':>12} {'run uniform s':>14} {'run variant s':>14} {'run ratio':>10}")
    for item in args.codecs.split(","):
        name, _, method = item.partition(":")
        method = method or "blur"
        uniform, variant = create_codec(name), create_codec(name, roi_method=method)
        label = codec_label(name, {"roi": f"gt-{method}"}, {})
        runner._init_worker(runner.RunConfig(
            data_root=args.data_root, codec_options={label: {"roi_method": method}},
            metrics=tuple(args.metrics.split(","))))
        units = {}
        for sample in samples:
            units[sample.image_id] = (
                runner.Unit(name, uniform.version(), sample.image_id, uniform.qualities, name),
                runner.Unit(name, variant.version(), sample.image_id, variant.qualities, label))
        round_trip_seconds(uniform, samples[0])  # warm-up: programs and libraries loaded
        round_trip_seconds(variant, samples[0])
        for unit in units[samples[0].image_id]:
            run_seconds(unit)
        u = v = ru = rv = 0.0
        for sample in samples:
            uniform_unit, variant_unit = units[sample.image_id]
            times = [(round_trip_seconds(uniform, sample), round_trip_seconds(variant, sample),
                      run_seconds(uniform_unit), run_seconds(variant_unit))
                     for _ in range(args.repeat)]
            medians = [statistics.median(way) for way in zip(*times, strict=True)]
            u, v, ru, rv = (a + b for a, b in zip((u, v, ru, rv), medians, strict=True))
        print(f"{name:>8} {method:>6} {u:10.2f} {v:14.2f} {v / u:12.3f} "
              f"{ru:14.2f} {rv:14.2f} {rv / ru:10.3f}")


if __name__ == "__main__":
    main()
