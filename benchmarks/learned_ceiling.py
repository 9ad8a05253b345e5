"""Where a learned ROI codec loses its quality: quantization or the transforms?

For each model file given (a released ``.pt`` or a training snapshot exported with
``bench train --recipe … --export-only --export FILE --rd-images 0``), at uniform quality
codes over the whole range (``--codes``, default 0, 25, 50, 75, 100), on the same COCO val2017
images (and optionally Kodak):

* the model's own rate estimate (bpp of ``y`` and ``z`` from its likelihoods) and the share
  of it spent on the hyper-latent ``z``;
* PSNR of the reconstruction as coded (latents rounded around the predicted mean);
* PSNR with the latents **not quantized** (``g_s`` fed the gained, un-rounded ``y``): the
  reconstruction the transforms would give with free, exact latents, an upper bound on
  what finer quantization alone could buy at that quality;
* the latent channels that carry bits (over 0.05 bit per position on average).

If the as-coded PSNR flattens at the top while the unquantized PSNR sits just above it, the
top end is bounded by the analysis/synthesis transforms (capacity or training), not by the
rate control, and a wider λ range or larger gains will not help. Reconstructions are clamped
to [0, 1] and rounded to 8 bits as the decoder does; PSNR is over the original pixels.
Run: ``python benchmarks/learned_ceiling.py --model bench/learned/weights/ggm.pt --model
snap.pt [--limit 6] [--kodak 4]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def passes(model, image: np.ndarray, code: int) -> dict:
    """Estimated bits, as-coded and unquantized reconstructions of ``image`` at ``code``."""
    import torch

    from bench.learned.coding import model_inputs
    from bench.learned.latents import ACTIVE_CHANNEL_BITS
    from bench.learned.layers import single_thread
    from bench.learned.qmap import GridPoint

    h, w = image.shape[:2]
    x, q, q_lat, _ = model_inputs(image, None, GridPoint(f"u{code}", code, code, code), "none")
    with single_thread(), torch.inference_mode():
        out = model(x, q, q_lat)  # out["y"]: the gained latent, before rounding
        gains = model.gain_maps(q_lat)
        y = out["y"] * gains[1] if gains else out["y"]
        free = model.g_s(y, model.lat_cond(q_lat))
        bits = {k: float(-torch.log2(v).sum()) for k, v in out["likelihoods"].items()}
        per_position = (-torch.log2(out["likelihoods"]["y"])).mean(dim=(0, 2, 3))

    def to_image(t):
        arr = t[0, :, :h, :w].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
        return np.ascontiguousarray(arr)

    return {"bits": bits, "coded": to_image(out["x_hat"]), "free": to_image(free),
            "active": int((per_position > ACTIVE_CHANNEL_BITS).sum())}


def measure(model, images, codes) -> list[dict]:
    from bench.metrics import psnr

    rows = []
    for code in codes:
        bits_y = bits_z = pixels = 0.0
        coded, free, active = [], [], []
        for image in images:
            r = passes(model, image, code)
            bits_y += r["bits"]["y"]
            bits_z += r["bits"]["z"]
            pixels += image.shape[0] * image.shape[1]
            coded.append(psnr(image, r["coded"]))
            free.append(psnr(image, r["free"]))
            active.append(r["active"])
        rows.append({"code": code, "bpp": (bits_y + bits_z) / pixels,
                     "z_share": bits_z / (bits_y + bits_z), "coded": float(np.mean(coded)),
                     "free": float(np.mean(free)), "active": float(np.mean(active))})
    return rows


def table(name: str, rows: list[dict]) -> None:
    print(f"\n{name}")
    print(f"{'code':>5} {'est bpp':>8} {'z share':>8} {'PSNR coded':>11} {'PSNR free':>10} "
          f"{'quant loss':>10} {'active ch':>9}")
    for r in rows:
        print(f"{r['code']:>5} {r['bpp']:8.4f} {r['z_share']:8.3f} {r['coded']:11.2f} "
              f"{r['free']:10.2f} {r['free'] - r['coded']:10.2f} {r['active']:9.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, help="model file (repeat)")
    ap.add_argument("--codes", default="0,25,50,75,100",
                    help="uniform quality codes 0–100, comma-separated (default 0,25,50,75,100)")
    ap.add_argument("--data-root", default=None, help="COCO root (default: shared/env)")
    ap.add_argument("--limit", type=int, default=6, help="COCO val images (default 6)")
    ap.add_argument("--kodak", type=int, default=0, help="Kodak images (default 0)")
    ap.add_argument("--kodak-dir", default=None, help="Kodak folder (default: shared/env)")
    args = ap.parse_args()
    try:
        codes = [int(c) for c in args.codes.split(",")]
    except ValueError:
        ap.error(f"--codes: expected integers like 0,50,100, got {args.codes!r}")
    if any(not 0 <= c <= 100 for c in codes):
        ap.error(f"--codes: each code must be in 0–100, got {args.codes!r}")

    from bench.learned.checkpoint import load_model
    from bench.learned.rd import coco_images, kodak_images

    coco = [img for img, _ in coco_images(args.data_root, "val2017", args.limit)]
    kodak = []
    if args.kodak:
        import os

        from bench.learned.data import shared_root

        kodak_dir = args.kodak_dir or os.environ.get("BENCH_KODAK_DIR") or shared_root() / "kodak"
        kodak = [img for img, _ in kodak_images(kodak_dir, args.kodak)]
    print(f"{len(coco)} COCO val2017 images" + (f", {len(kodak)} Kodak images" if kodak else "")
          + "; uniform quality; PSNR free = latents not quantized")
    for path in args.model:
        t0 = time.perf_counter()
        model, card = load_model(path)
        steps = (card.get("budget") or {}).get("steps")
        name = f"{Path(path).name} ({card.get('recipe', {}).get('name', 'release-1')}, " \
               f"step {steps})"
        table(f"{name}, COCO", measure(model, coco, codes))
        if kodak:
            table(f"{name}, Kodak", measure(model, kodak, codes))
        print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
