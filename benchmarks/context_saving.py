"""What the checkerboard context saves inside one model: its bitstreams with and without it.

For a model with a spatial context (``context = 1``, e.g. a ``release-8-ctx`` snapshot
exported with ``bench train --recipe release-8-ctx --export-only --export FILE --rd-images
0``), each COCO val2017 picture is coded at each grid point twice with real bitstreams: as
the model is, and with its context convolution set to zero, so every latent gets the
hyperprior's parameters alone (what the network computed at the warm start). The
reconstruction is the same both times (the context changes the entropy parameters only), so
the byte counts are the whole comparison: the share of the rate the context saves in this
network's latents. It is not an A/B against a network trained without a context (whose
transforms differ): ``benchmarks/learned_rd.py`` with both models judges that.

Run: ``python benchmarks/context_saving.py --model snap.pt [--limit 4] [--roi]``.
"""

from __future__ import annotations

import argparse

import torch

from bench.learned.checkpoint import load_model
from bench.learned.coding import encode_image
from bench.learned.qmap import GRID


def coded_bytes(model, images, point, roi_mode: str) -> int:
    return sum(len(encode_image(model, image, roi if roi_mode == "gt" else None, point,
                                roi_mode)) for image, roi in images)


def main(argv=None) -> None:
    from bench.learned.rd import judged_pictures

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a released .pt with context = 1")
    ap.add_argument("--limit", type=int, default=4, help="COCO val2017 pictures (default 4)")
    ap.add_argument("--data-root", default=None, help="COCO root (default: shared/env)")
    ap.add_argument("--roi", action="store_true",
                    help="code with the ground-truth ROI (default: uniform, --roi none)")
    args = ap.parse_args(argv)
    model, card = load_model(args.model)
    if not model.context:
        raise SystemExit(f"{args.model} has no spatial context (config {model.config()}): "
                         f"nothing to compare")
    images = judged_pictures(args.data_root, args.limit)  # learned_rd.py's pictures
    mode = "gt" if args.roi else "none"
    steps = card.get("budget", {}).get("steps")
    print(f"{args.model}: {card.get('recipe', {}).get('name')} at step {steps}, "
          f"{len(images)} val pictures, --roi {mode}")
    print("point  bytes with context  without  saved")
    weight, bias = model.ctx.weight.detach().clone(), model.ctx.bias.detach().clone()
    for point in GRID:
        with_ctx = coded_bytes(model, images, point, mode)
        with torch.no_grad():
            model.ctx.weight.zero_(), model.ctx.bias.zero_()
        try:
            without = coded_bytes(model, images, point, mode)
        finally:
            with torch.no_grad():
                model.ctx.weight.copy_(weight), model.ctx.bias.copy_(bias)
        print(f"{point.name:>5}  {with_ctx:>18}  {without:>7}  {1 - with_ctx / without:>6.2%}")


if __name__ == "__main__":
    main()
