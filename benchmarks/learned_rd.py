"""Rate–distortion of learned ROI codec checkpoints side by side, on the same images.

For each model file given (a released ``.pt``, e.g. the package's weights and a training
snapshot exported with ``bench train --recipe … --export-only --export FILE --rd-images 0``),
with real bitstreams (every byte counted):

* **uniform** (``--roi none``) on COCO val2017 images: bpp and PSNR per grid point, the PSNR
  gain per doubling of λ over the grid (the model card's λ range and the grid's uniform
  codes), and the PSNR at the top grid point; one more uniform point at the top of the λ
  range (code 100, above the grid's top uniform code): how much quality the λ the model was
  trained up to still buys, i.e. whether its quality response flattens at the top;
* **ROI** (``--roi gt``) on the same images: bpp, ROI-PSNR and background PSNR per point, and
  the *ROI gain*: BD-rate of ROI mode against the same model's uniform mode, on ROI-PSNR
  (pchip, pooled bpp), the figure ``bench report --anchor ggm@roi-none`` gives on a run;
* optionally Kodak (``--kodak N``), uniform;
* with several models, the BD-rate of each against each one before it (pchip, pooled bpp)
  on uniform PSNR and on ROI-mode ROI-PSNR: how much less rate a snapshot needs than the
  release for the same quality.

Judgements across sessions: ``--save FILE`` writes every model's rows (JSON, with a digest
of the pictures coded, the CPU and the torch build); ``--against FILE`` (repeatable) puts the
models saved there before the new ones in the summary and its BD-rates, after checking that
they were judged on the same pictures, so a training snapshot is judged against a release
without coding the release again (``--against`` alone compares saved judgements). Rows from
another CPU kind or torch build may differ a little (the learned codecs' floats round
differently); the summary says when they do.

Training is judged by these numbers, not by its loss. Run:
``python benchmarks/learned_rd.py --model bench/learned/weights/ggm.pt --model snap.pt
[--limit 12] [--kodak 4] [--save rd.json] [--against earlier.json]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from bench.learned.checkpoint import load_model
from bench.learned.coding import decode_image, encode_image
from bench.learned.qmap import GRID, LAMBDA_MAX, LAMBDA_MIN, Q_STEPS, GridPoint
from bench.metrics import region_psnrs
from bench.report.bd import Curve, bd
from bench.report.check import environment_fingerprint
from bench.tasks.ultralytics_backend import file_sha256


def lambda_range(card: dict) -> tuple[float, float]:
    recipe = card.get("recipe") or {}
    return recipe.get("lambda_min", LAMBDA_MIN), recipe.get("lambda_max", LAMBDA_MAX)


#: Uniform coding at the top of the model's λ range (q = 1), beyond the grid's top point.
LAMBDA_MAX_POINT = GridPoint("λmax", Q_STEPS, Q_STEPS, Q_STEPS)


def measure(model, images, mode: str, points=GRID) -> list[dict]:
    """Pooled bpp and mean PSNR / ROI-PSNR / background PSNR per point (default the grid)."""
    rows = []
    for point in points:
        bits = pixels = 0
        full, roi_p, bg_p = [], [], []
        for image, roi in images:
            data = encode_image(model, image, roi if mode == "gt" else None, point, mode)
            recon = decode_image(model, data)
            f, r, b, _ = region_psnrs(image, recon, roi)
            bits += 8 * len(data)
            pixels += image.shape[0] * image.shape[1]
            full.append(f)
            roi_p.append(r)
            bg_p.append(b)
        rows.append({"quality": point.name, "bpp": bits / pixels,
                     "psnr": float(np.mean(full)),
                     "roi_psnr": float(np.mean([v for v in roi_p if math.isfinite(v)])),
                     "bg_psnr": float(np.mean([v for v in bg_p if math.isfinite(v)]))})
    return rows


def pictures_digest(images) -> str:
    """A fingerprint of the pictures and ROIs coded: saved judgements compare only on equal
    ones."""
    h = hashlib.sha256()
    for image, roi in images:
        h.update(repr(image.shape).encode())
        h.update(np.ascontiguousarray(image).tobytes())
        h.update(np.packbits(roi).tobytes() if roi is not None else b"-")
    return h.hexdigest()[:16]


def machine() -> dict:
    """The CPU model and torch build the rows are coded on (they depend on both through the
    learned codecs' float rounding): the CPU as ``bench check``'s environment fingerprint
    names it, torch with its build tag (``+cu130``)."""
    import torch

    return {"cpu": environment_fingerprint()["cpu"]["model"], "torch": torch.__version__}


def judge(path: str, coco, kodak) -> dict:
    """One model's rows on the judged pictures (uniform, ROI mode, the λ-max point, Kodak),
    printed as they come, as :func:`summarise` and ``--save`` take them."""
    t0 = time.perf_counter()
    model, card = load_model(path)
    lam_min, lam_max = lambda_range(card)
    steps = (card.get("budget") or {}).get("steps")
    name = f"{Path(path).name} ({card.get('recipe', {}).get('name', 'release-1')}, " \
           f"step {steps})"
    uniform = measure(model, coco, "none")
    roi = measure(model, coco, "gt")
    (top,) = measure(model, coco, "none", (LAMBDA_MAX_POINT,))
    print(f"\n{name}: λ {lam_min:g}–{lam_max:g}")
    print(f"{'q':>3} {'bpp uni':>8} {'PSNR uni':>8} {'bpp roi':>8} {'ROI-PSNR':>8} "
          f"{'bg-PSNR':>8} {'uni ROI':>8}")
    for u, r in zip(uniform, roi, strict=True):
        print(f"{u['quality']:>3} {u['bpp']:8.4f} {u['psnr']:8.3f} {r['bpp']:8.4f} "
              f"{r['roi_psnr']:8.3f} {r['bg_psnr']:8.3f} {u['roi_psnr']:8.3f}")
    print(f"{'λmax':>4}{top['bpp']:8.4f} {top['psnr']:8.3f}   (uniform at code {Q_STEPS})")
    entry = {"model": name, "file": str(path), "sha256": file_sha256(Path(path))[:16],
             "lambda": [lam_min, lam_max], "uniform": uniform, "roi": roi, "lmax": top,
             **machine()}
    if kodak:
        k = measure(model, kodak, "none")
        print("Kodak uniform: " + ", ".join(f"{r['quality']} {r['bpp']:.3f} bpp "
                                            f"{r['psnr']:.2f} dB" for r in k))
        entry["kodak"] = k
    print(f"({time.perf_counter() - t0:.0f} s)")
    return entry


def summarise(entry: dict) -> dict:
    """The summary figures of one judged model from its rows."""
    uniform, roi, top = entry["uniform"], entry["roi"], entry["lmax"]
    lam_min, lam_max = entry["lambda"]
    lo, hi = GRID[0].uniform / Q_STEPS, GRID[-1].uniform / Q_STEPS
    octaves = math.log2(lam_max / lam_min)  # doublings of λ from q = 0 to q = 1
    slope = (uniform[-1]["psnr"] - uniform[0]["psnr"]) / ((hi - lo) * octaves)
    top_slope = (top["psnr"] - uniform[-1]["psnr"]) / ((1 - hi) * octaves)
    roi_curve = _curve(roi, "roi_psnr")
    gain = bd(_curve(uniform, "roi_psnr"), roi_curve)
    return {"model": entry["model"], "slope": slope, "top": uniform[-1]["psnr"],
            "uniform": _curve(uniform, "psnr"), "roi": roi_curve,
            "top_bpp": uniform[-1]["bpp"], "roi_gain": gain.bd_rate,
            "lmax": top, "top_slope": top_slope,
            "roi_overlap": gain.rate_overlap, "bpp_range": (roi[0]["bpp"], roi[-1]["bpp"])}


def load_saved(path: str, pictures: dict | None) -> tuple[dict, list[dict]]:
    """The pictures record and models of a ``--save`` file; an error naming the file when it
    is not one, or when ``pictures`` (those coded now) differ from the ones it judged."""
    try:
        saved = json.loads(Path(path).read_text())
        models, judged = saved["models"], saved["pictures"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"--against {path}: not a judgement saved by learned_rd.py --save "
                         f"({exc})") from None
    if pictures is not None and judged["digest"] != pictures["digest"]:
        raise SystemExit(
            f"--against {path}: judged on other pictures ({judged['count']} pictures, "
            f"--limit {judged['limit']}, digest {judged['digest']}) than these "
            f"({pictures['count']}, --limit {pictures['limit']}, digest {pictures['digest']}); "
            f"rerun with the same --limit and COCO root")
    return judged, models


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", default=[], help="model file (repeat)")
    ap.add_argument("--data-root", default=None, help="COCO root (default: shared/env)")
    ap.add_argument("--limit", type=int, default=12, help="COCO val images (default 12)")
    ap.add_argument("--kodak", type=int, default=0, help="Kodak images, uniform (default 0)")
    ap.add_argument("--kodak-dir", default=None, help="Kodak folder (default: shared/env)")
    ap.add_argument("--save", default=None, metavar="FILE",
                    help="write the models' rows here (JSON) for a later --against")
    ap.add_argument("--against", action="append", default=[], metavar="FILE",
                    help="models judged earlier (a --save file; repeat): compared first")
    args = ap.parse_args()
    if not args.model and not args.against:
        ap.error("give --model (a model file to judge) or --against (saved judgements)")
    if args.save and not args.model:
        ap.error("--save writes the rows of --model files; give at least one")

    entries: list[dict] = []
    pictures = None
    if args.model:
        from bench.learned.rd import judged_pictures, kodak_images

        coco = judged_pictures(args.data_root, args.limit)
        pictures = {"count": len(coco), "limit": args.limit, "digest": pictures_digest(coco)}
    for path in args.against:  # before any coding: a wrong file fails at once
        judged, models = load_saved(path, pictures)
        if pictures is None:  # no --model: the later files must match the first
            pictures = judged
        for m in models:
            m = dict(m, model=f"{m['model']} [{Path(path).name}]")
            entries.append(m)
            print(f"{m['model']}: saved (judged on {m.get('cpu', '?')}, torch "
                  f"{m.get('torch', '?')})")
    if args.model:
        kodak = []
        if args.kodak:
            import os

            from bench.learned.data import shared_root

            kodak_dir = args.kodak_dir or os.environ.get("BENCH_KODAK_DIR") \
                or shared_root() / "kodak"
            kodak = kodak_images(kodak_dir, args.kodak)
        print(f"{len(coco)} COCO val2017 images with objects (digest {pictures['digest']})"
              + (f", {len(kodak)} Kodak images" if kodak else ""))
        new = [judge(path, coco, kodak) for path in args.model]
        if args.save:
            Path(args.save).write_text(json.dumps(
                {"pictures": pictures, "command": " ".join(sys.argv),
                 "date": time.strftime("%Y-%m-%d %H:%M"), "models": new}, indent=1) + "\n")
            print(f"\nrows saved to {args.save}")
        entries += new
    summary = [summarise(e) for e in entries]
    print(f"\nsummary (COCO val, the same {pictures['count']} pictures):")
    for s in summary:
        print(f"  {s['model']}: PSNR per doubling of λ {s['slope']:.2f} dB; top uniform "
              f"{s['top']:.2f} dB at {s['top_bpp']:.3f} bpp; ROI gain (BD-rate gt vs none, "
              f"ROI-PSNR) {s['roi_gain']:+.1f} % (overlap {s['roi_overlap']:.0f} %); ROI-mode "
              f"bpp {s['bpp_range'][0]:.3f}–{s['bpp_range'][1]:.3f}; at λ max "
              f"{s['lmax']['psnr']:.2f} dB at {s['lmax']['bpp']:.3f} bpp "
              f"({s['top_slope']:.2f} dB per doubling above the top point)")
    machines = {(e.get("cpu"), e.get("torch")) for e in entries}
    if len(machines) > 1:
        print("  (judged on different CPUs or torch builds: "
              + "; ".join(f"{c}, torch {t}" for c, t in sorted(machines, key=str))
              + "; the rows may differ a little from that alone)")
    for j, s in enumerate(summary):
        for first in summary[:j]:
            uni, roi = bd(first["uniform"], s["uniform"]), bd(first["roi"], s["roi"])
            print(f"  {s['model']} against {first['model']}: BD-rate {uni.bd_rate:+.1f} % on "
                  f"uniform PSNR (overlap {uni.rate_overlap:.0f} %), {roi.bd_rate:+.1f} % on "
                  f"ROI-mode ROI-PSNR (overlap {roi.rate_overlap:.0f} %)")


def _curve(rows: list[dict], metric: str) -> Curve:
    return Curve(tuple(r["bpp"] for r in rows), tuple(r[metric] for r in rows))


if __name__ == "__main__":
    main()
