"""Wall time of a codec's ROI variant (``--roi-method blur`` or ``qp``) against the codec.

For each ``codec[:method]`` (method ``blur``, the background pre-filter, unless given; ``qp``:
the encoder's own spatial rate control, e.g. ``hevc:qp``), on the same COCO val2017 images
with their GT ROI, encode + decode every grid point of the uniform codec and of its ROI
variant, interleaved image by image so that machine load hits both alike; prints the summed
wall times and their ratio (target: at most 1.2).

Run: ``python benchmarks/roi_prefilter_speed.py [--codecs jpeg,webp,hevc,hevc:qp] [--limit 8]``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from bench.data.coco import CocoDataset
from bench.registry import create_codec

SHARED = Path(__file__).resolve().parents[2] / "shared"


def round_trip_seconds(codec, sample) -> float:
    t0 = time.perf_counter()
    for quality in codec.qualities:
        codec.decode(codec.encode(sample.image, sample.roi, quality))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--codecs", default="jpeg,webp,hevc,hevc:qp",
                    help="comma-separated codec[:method] (method: blur, the default, or qp)")
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--data-root", default=os.environ.get("BENCH_DATA_ROOT")
                    or str(SHARED / "data" / "coco"))
    args = ap.parse_args()
    samples = list(CocoDataset(args.data_root, "val2017", limit=args.limit))
    print(f"{len(samples)} val2017 images, every grid point, encode + decode")
    print(f"{'codec':>8} {'method':>6} {'uniform s':>10} {'ROI variant s':>14} {'ratio':>6}")
    for item in args.codecs.split(","):
        name, _, method = item.partition(":")
        method = method or "blur"
        uniform, variant = create_codec(name), create_codec(name, roi_method=method)
        round_trip_seconds(uniform, samples[0])  # warm-up: programs and libraries loaded
        round_trip_seconds(variant, samples[0])
        u = v = 0.0
        for sample in samples:
            u += round_trip_seconds(uniform, sample)
            v += round_trip_seconds(variant, sample)
        print(f"{name:>8} {method:>6} {u:10.2f} {v:14.2f} {v / u:6.3f}")


if __name__ == "__main__":
    main()
