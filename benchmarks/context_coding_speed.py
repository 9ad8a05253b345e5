"""Coding time of the checkerboard context: its sparse convolution against the dense one.

A model with a spatial context (``context = 1``) computes, when coding, the context
convolution only at the non-anchor positions and only from the taps that meet an anchor
(:func:`bench.learned.network.checkerboard_context`, about a quarter of the dense
convolution's multiply-adds); training runs the dense ``conv2d``. This script codes the same
COCO val2017 pictures at the same grid points both ways, one CPU thread as the codecs run,
the two ways interleaved per picture and repeat, and prints the median encode and decode
times of each and their ratios (last lines ``encode_speedup <x>`` and ``decode_speedup
<x>``). It also says whether the two ways wrote the same bytes: their sums run in different
orders, so a latent on a rounding edge may be coded differently (each way decodes its own
stream; the codec always uses the sparse one).

Run: ``python benchmarks/context_coding_speed.py --model snap.pt [--limit 4] [--repeats 3]``
(``snap.pt``: a ``release-8-ctx`` snapshot exported with ``bench train --recipe release-8-ctx
--entropy ggm --export-only --export snap.pt --rd-images 0``).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch.nn.functional as F

import bench.learned.network as network
from bench.learned.checkpoint import load_model
from bench.learned.coding import decode_image, encode_image
from bench.learned.layers import single_thread
from bench.learned.qmap import grid_point

SPARSE = network.checkerboard_context


def dense_context(x, weight, bias):
    """The dense convolution the sparse one stands for (training's)."""
    return F.conv2d(x, weight, bias, padding=weight.shape[-1] // 2)


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def main(argv=None) -> None:
    from bench.learned.rd import judged_pictures

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a released .pt with context = 1")
    ap.add_argument("--limit", type=int, default=4, help="COCO val2017 pictures (default 4)")
    ap.add_argument("--data-root", default=None, help="COCO root (default: shared/env)")
    ap.add_argument("--points", default="q1,q5,q8", help="grid points (default q1,q5,q8)")
    ap.add_argument("--repeats", type=int, default=3, help="repeats of each (default 3)")
    args = ap.parse_args(argv)
    model, card = load_model(args.model)
    if not model.context:
        raise SystemExit(f"{args.model} has no spatial context (config {model.config()}): "
                         f"nothing to time")
    images = judged_pictures(args.data_root, args.limit)
    points = [grid_point(name) for name in args.points.split(",")]
    print(f"{args.model}: {card.get('recipe', {}).get('name')}, {len(images)} val pictures, "
          f"points {args.points}, {args.repeats} repeats, one thread")
    times = {way: {"encode": [], "decode": []} for way in ("sparse", "dense")}
    same = total = 0
    with single_thread():
        for image, roi in images:
            for point in points:
                streams = {}
                for _ in range(args.repeats):
                    for way, fn in (("sparse", SPARSE), ("dense", dense_context)):
                        network.checkerboard_context = fn
                        try:
                            data, te = timed(encode_image, model, image, roi, point)
                            _, td = timed(decode_image, model, data)
                        finally:
                            network.checkerboard_context = SPARSE
                        times[way]["encode"].append(te)
                        times[way]["decode"].append(td)
                        streams[way] = data
                total += 1
                same += streams["sparse"] == streams["dense"]
    med = {way: {k: statistics.median(v) for k, v in t.items()} for way, t in times.items()}
    for way in ("dense", "sparse"):
        print(f"{way:>6}: encode {med[way]['encode']:.3f} s, decode {med[way]['decode']:.3f} s "
              f"(median per picture and point)")
    print(f"same bytes both ways: {same} of {total} picture-points")
    print(f"encode_speedup {med['dense']['encode'] / med['sparse']['encode']:.2f}")
    print(f"decode_speedup {med['dense']['decode'] / med['sparse']['decode']:.2f}")


if __name__ == "__main__":
    main()
