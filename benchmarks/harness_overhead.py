"""Harness overhead: `bench run --codec jpeg` vs a bare Python loop doing the same coding.

Both sides run as fresh processes over the same images (default: the 79 shared val2017
images), interleaved, and the median wall time of each is compared. The bare loop reads
each file, encodes it with Pillow at every quality of the jpeg codec's grid with the same
settings, decodes it and computes PSNR; the harness does that plus ROI masks, ROI and
background PSNR, hashing, the SQLite store and the summary table. MS-SSIM is switched off
on the harness side (``--metrics psnr``) because the bare loop does not compute it.

Last line: ``overhead_ratio <harness / bare>`` (target ≤ 1.15).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from _timing import timed_command

BARE_LOOP = r"""
import io, json, math, sys
import numpy as np
from PIL import Image
from bench.codecs.jpeg import JpegCodec

root, limit = sys.argv[1], int(sys.argv[2])
doc = json.load(open(f"{root}/annotations/instances_val2017.json"))
images = sorted(doc["images"], key=lambda i: i["id"])[:limit]
grid = [int(q[1:]) for q in JpegCodec.qualities]
for info in images:
    with Image.open(f"{root}/val2017/{info['file_name']}") as im:
        x = np.asarray(im.convert("RGB"))
    for q in grid:
        buf = io.BytesIO()
        Image.fromarray(x).save(buf, format="JPEG", quality=q, subsampling=2)
        with Image.open(io.BytesIO(buf.getvalue())) as im:
            y = np.asarray(im.convert("RGB"))
        d = x.astype(np.int32) - y.astype(np.int32)
        mse = float((d * d).mean())
        psnr = math.inf if mse == 0 else 10 * math.log10(255 ** 2 / mse)
"""


def main() -> None:
    repo = Path(__file__).resolve().parents[1]
    default_root = os.environ.get("BENCH_DATA_ROOT") or str(repo.parent / "shared/data/coco")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=default_root)
    ap.add_argument("--limit", type=int, default=79)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    env = dict(os.environ, BENCH_PROGRESS="0")
    bare, harness = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            bare.append(timed_command([sys.executable, "-c", BARE_LOOP, args.data_root,
                               str(args.limit)], env))
            harness.append(timed_command([sys.executable, "-m", "bench", "run", "--codec", "jpeg",
                                  "--metrics", "psnr", "--limit", str(args.limit),
                                  "--data-root", args.data_root, "--run-dir", f"{tmp}/r{i}",
                                  "--no-progress"], env))
            print(f"repeat {i}: bare {bare[-1]:.2f} s, harness {harness[-1]:.2f} s", flush=True)
    b, h = statistics.median(bare), statistics.median(harness)
    print(f"images {args.limit}, median bare {b:.2f} s, median harness {h:.2f} s")
    print(f"overhead_ratio {h / b:.3f}")


if __name__ == "__main__":
    main()
