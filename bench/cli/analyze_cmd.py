"""``bench analyze-latents``: fit Gaussian, Laplacian, logistic and generalized Gaussian
densities to a learned codec's actual latents on COCO val images and print the bits per
element under each (next to the codec's own entropy model), with a histogram plot.

The latents are standardized by the hyper-decoder's predicted mean and scale; each family is
fitted by maximum likelihood of the quantized symbols with one global scale factor (and a
global shape for the generalized Gaussian). It also says how the latent channels share the
bits: how many carry any (a channel that training never took up, e.g. one added by a
widening, codes nothing) and how much the busiest tenth carries.
"""

from __future__ import annotations

import argparse
import sys


def register(sub) -> None:
    p = sub.add_parser("analyze-latents", help="fit densities to a learned codec's latents",
                       description=__doc__)
    p.add_argument("--codec", default="ggm", help="ggm or gaussian-roi (default ggm)")
    p.add_argument("--weights", default=None, help="released checkpoint (default: the package's)")
    p.add_argument("--quality", default="q5", help="grid point (default q5)")
    p.add_argument("--roi", choices=("gt", "none"), default="gt", help="ROI mode (default gt)")
    p.add_argument("--data-root", default=None,
                   help="COCO root (default: $BENCH_DATA_ROOT, else the shared subset)")
    p.add_argument("--split", default="val2017", help="COCO split (default val2017)")
    p.add_argument("--limit", type=int, default=20, help="images (default 20)")
    p.add_argument("--plot", default="latents.png", help="histogram PNG (default latents.png)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from bench.learned.latents import (
        FAMILIES,
        beta_band_summary,
        channel_summary,
        collect,
        fit,
        fit_regions,
        plot,
        proxy_summary,
    )
    from bench.learned.qmap import grid_point
    from bench.learned.rd import coco_images
    from bench.registry import create_codec

    codec = create_codec(args.codec, **({"weights": args.weights} if args.weights else {}))
    if not hasattr(codec, "entropy"):
        print(f"bench analyze-latents: error: {args.codec} is not a learned codec",
              file=sys.stderr)
        return 2
    reason = codec.availability()
    if reason:
        print(f"bench analyze-latents: error: {reason}", file=sys.stderr)
        return 2
    from bench.codecs.base import CodecError
    from bench.data.coco import DataError

    try:
        images = coco_images(args.data_root or None, args.split, args.limit)
        model = codec.model
    except (CodecError, DataError) as exc:
        print(f"bench analyze-latents: error: {exc}", file=sys.stderr)
        return 2
    collected = collect(model, images, grid_point(args.quality), args.roi)
    fits = fit(collected)
    print(f"{args.codec} at {args.quality} (roi {args.roi}), {len(images)} {args.split} images, "
          f"{collected['elements']} latent elements")
    print(f"{'density':<12}{'bits/elem':>10}  fitted parameters")
    print(f"{'codec model':<12}{fits['own']['bpe']:>10.4f}  (per-element predicted)")
    for fam in FAMILIES:
        extra = "  ".join(f"{k}={v:.4f}" for k, v in fits[fam].items() if k != "bpe")
        print(f"{fam:<12}{fits[fam]['bpe']:>10.4f}  {extra}")
    print(proxy_summary(collected))
    if "own_beta2_bpe" in collected:
        print("same network, same symbols, shape replaced:")
        print(f"  beta=2, same (mu, alpha):        {collected['own_beta2_bpe']:.4f} bits/elem")
        print(f"  Gaussian with the GG's std:      "
              f"{collected['own_same_std_gaussian_bpe']:.4f} bits/elem")
        qs = "  ".join(f"p{int(100 * p)}={v:.3f}" for p, v in collected["beta_quantiles"].items())
        print(f"  predicted beta quantiles: {qs}")
        print(beta_band_summary(collected))
    print(channel_summary(collected["channel_bits"]))
    regions = fit_regions(collected)
    for name, rf in regions.items():
        ggm = rf["ggm"]
        print(f"{name} latents ({rf['elements']} sampled): gaussian {rf['gaussian']['bpe']:.4f}, "
              f"laplacian {rf['laplacian']['bpe']:.4f}, ggm {ggm['bpe']:.4f} bits/elem "
              f"(beta={ggm['beta']:.3f})")
    plot(collected, fits, args.plot, f"{args.codec} latents at {args.quality}")
    print(f"histogram: {args.plot}")
    return 0
