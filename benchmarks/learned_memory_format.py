"""What storing the learned codecs' transforms channels-last buys, and what it changes.

PyTorch's CPU convolutions (oneDNN) run faster on NHWC ("channels-last") tensors than on the
default NCHW layout, with a different summation order, so the floats differ in the last
bits. The analysis and synthesis transforms (``g_a``, ``g_s``: most of an encode and of a
decode) may change that way without breaking decoding: the bitstream's entropy parameters
come from the hyper-synthesis, left as it is (format 3 computes them in float64 for the same
reason). What such a change costs is a codec version (the decoded pixels change), so it
goes with a release: codec version 4 (release 5) on,
:func:`bench.learned.checkpoint.load_model` stores them so
(:meth:`bench.learned.network.RoiHyperprior.store_transforms`). This script
measures the two layouts side by side, whichever the codecs load.

Side by side, on the same val2017 pictures of 640×480 with their GT ROI at one grid point,
one thread as the codecs run, repeats interleaved: median encode and decode time with the
released weights' ``g_a``/``g_s`` in the default layout and channels-last; whether the
bitstreams are byte-identical (``g_a``'s floats differ; a latent that rounds the other way
changes them); and the share of decoded 8-bit pixel values that differ, and by how much,
when each decoder decodes the same (default-layout) bitstream. Last line: ``speedup encode
<x> decode <y>``.

Run: ``python benchmarks/learned_memory_format.py [--data-root ../shared/data/coco]
[--images 3] [--repeats 3] [--quality q5]``.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import statistics
import time

import numpy as np
import torch

from bench.codecs.base import CodecUnavailable
from bench.data.coco import CocoDataset
from bench.learned.coding import decode_image, encode_image
from bench.learned.qmap import GRID_NAMES, grid_point
from bench.registry import CODECS


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", default=None, help="COCO root (default: ../shared/data/coco)")
    ap.add_argument("--images", type=int, default=3, help="640×480 val pictures (default 3)")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats per picture")
    ap.add_argument("--quality", default="q5", choices=GRID_NAMES)
    ap.add_argument("--codec", action="append", choices=("ggm", "gaussian-roi"),
                    help="codec(s) to measure (default both)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ds = CocoDataset(args.data_root, "val2017")
    vga = (i for i in ds.ids if (ds.info(i)["width"], ds.info(i)["height"]) == (640, 480))
    samples = [ds.load(i) for i in itertools.islice(vga, args.images)]  # load only those
    if not samples:
        raise SystemExit("no 640×480 picture in the val set")
    point = grid_point(args.quality)
    enc_ratios, dec_ratios = [], []
    for name in args.codec or ("ggm", "gaussian-roi"):
        try:
            released = CODECS.create(name).model
        except CodecUnavailable as exc:
            raise SystemExit(f"{name}: {exc}") from exc
        base = copy.deepcopy(released).store_transforms(torch.contiguous_format)
        fast = copy.deepcopy(released).store_transforms(torch.channels_last)
        times = {k: [] for k in ("enc", "enc_cl", "dec", "dec_cl")}
        same_bytes, differing, worst, pixels = 0, 0, 0, 0
        for sample in samples:
            data = encode_image(base, sample.image, sample.roi, point)
            data_cl = encode_image(fast, sample.image, sample.roi, point)
            same_bytes += data == data_cl
            a, b = decode_image(base, data), decode_image(fast, data)
            diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
            differing += int((diff > 0).sum())
            worst = max(worst, int(diff.max()))
            pixels += diff.size
            for _ in range(args.repeats):
                for key, model in (("enc", base), ("enc_cl", fast)):
                    t = time.perf_counter()
                    encode_image(model, sample.image, sample.roi, point)
                    times[key].append(time.perf_counter() - t)
                for key, model in (("dec", base), ("dec_cl", fast)):
                    t = time.perf_counter()
                    decode_image(model, data)
                    times[key].append(time.perf_counter() - t)
        med = {k: statistics.median(v) for k, v in times.items()}
        enc_ratios.append(med["enc"] / med["enc_cl"])
        dec_ratios.append(med["dec"] / med["dec_cl"])
        print(f"{name} ({len(samples)} pictures, {args.quality}, {args.repeats} repeats): "
              f"encode {med['enc']:.2f} s vs channels-last {med['enc_cl']:.2f} s "
              f"({enc_ratios[-1]:.2f}x), decode {med['dec']:.2f} s vs {med['dec_cl']:.2f} s "
              f"({dec_ratios[-1]:.2f}x); bitstreams identical {same_bytes}/{len(samples)}; "
              f"decoded values differing {differing}/{pixels} ({differing / pixels:.2e}), "
              f"by at most {worst}")
    print(f"speedup encode {min(enc_ratios):.2f} decode {min(dec_ratios):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
