"""Bytes of the learned codecs' two-level quality maps: zlib against context-modelled rANS.

The ROI map at latent resolution (one bit per 16×16 block) of every shared COCO val2017
picture with an ROI, coded the way release 2 codes it (zlib of the packed bits, or the raw
bits when smaller) and with :mod:`bench.learned.mapcoding`; every string is decoded again
and checked. ``--fit`` measures the context counts on the train2017 pictures (never
val2017) and says whether they are the ones the module holds.

Run: ``python benchmarks/map_coding.py [--data-root ../shared/data/coco] [--fit]``.
"""

from __future__ import annotations

import argparse
import os
import time
import zlib
from pathlib import Path

import numpy as np

from bench.data.coco import CocoDataset
from bench.learned.coding import model_inputs
from bench.learned.mapcoding import (
    CONTEXT_COUNTS,
    count_contexts,
    decode_binary_map,
    encode_binary_map,
)
from bench.learned.qmap import GRID

SHARED = Path(__file__).resolve().parents[2] / "shared"


def roi_maps(data_root: str, split: str):
    """(image id, 0/1 latent-resolution ROI map) of each picture whose map has two levels."""
    for sample in CocoDataset(data_root, split):
        _, _, _, codes = model_inputs(sample.image, sample.roi, GRID[0], "gt")
        codes = np.asarray(codes)
        if codes.min() != codes.max():
            yield sample.image_id, (codes == codes.max()).astype(np.uint8)


def zlib_bytes(bits: np.ndarray) -> int:
    raw = np.packbits(bits.ravel()).tobytes()
    return min(len(raw), len(zlib.compress(raw, 9)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=os.environ.get("BENCH_DATA_ROOT")
                    or str(SHARED / "data" / "coco"))
    ap.add_argument("--fit", action="store_true",
                    help="also measure the context counts on train2017")
    args = ap.parse_args()
    if args.fit:
        counts = count_contexts(m for _, m in roi_maps(args.data_root, "train2017"))
        print("train2017 context counts:", counts)
        print("same as bench.learned.mapcoding.CONTEXT_COUNTS:", counts == CONTEXT_COUNTS)
    z = ctx = 0
    seconds = 0.0
    maps = list(roi_maps(args.data_root, "val2017"))
    for _, bits in maps:
        data = encode_binary_map(bits)
        t0 = time.perf_counter()
        back = decode_binary_map(data, *bits.shape)
        seconds += time.perf_counter() - t0
        if not np.array_equal(back, bits):
            raise SystemExit("a map did not decode to itself")
        z += zlib_bytes(bits)
        ctx += len(data)
    n = len(maps)
    print(f"{n} val2017 ROI maps: zlib {z / n:.1f} B, context rANS {ctx / n:.1f} B per map "
          f"({ctx / z:.3f}×); decoding {1000 * seconds / n:.1f} ms per map")


if __name__ == "__main__":
    main()
