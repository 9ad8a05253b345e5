"""BD-rates with a bootstrap interval over the images: how much of a difference between two
codecs' BD-rates the image sample alone can make, on AP and on picture metrics side by side.

For each of ``--replicates`` resamples of the run's common images (drawn with replacement,
seeded), every (codec, grid point) is scored again on the drawn images: pooled bpp (bits
over pixels of the draws), the mean of the per-image picture metric (PSNRs capped at 100 dB
as in the summaries), or COCO AP from the stored predictions (pycocotools by default; an
image drawn twice counts twice: its ground truth and predictions are copied under a fresh
image id). The BD-rate against ``--anchor`` is then computed as ``bench report`` does (pchip,
pooled bpp, dominated points dropped). Printed per codec and metric: the BD-rate on all
images (the report's), the bootstrap median, the 95 % percentile interval (Efron and
Tibshirani, *An Introduction to the Bootstrap*, 1993, ch. 13) and the share of resamples
in which the codec needs less rate than the anchor. Resamples whose BD-rate is undefined
(no overlap) are counted and left out of the interval.

Nothing is coded or predicted: the run directory must already hold the codecs' rows and, for
AP, their task predictions (``bench run ... --task detection``).

Usage::

    python benchmarks/bd_bootstrap.py --run-dir runs/leaderboard --anchor vvc \\
        --codec ggm --codec hevc@roi-gt-qp --metric det-ap --metric roi-psnr --replicates 200
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def metric(key: str):
    """The report's :class:`bench.report.points.Metric` of a CLI name (``det-ap``): its
    task (None for a picture metric, whose ``column`` is the stored row's attribute)."""
    from bench.report.points import METRICS

    return METRICS[key]


def coco_stat(key: str) -> tuple[str, str]:
    """(IoU type, statistic) of a task metric, as the report's points table reads them."""
    from bench.report.points import TASK_STATS

    column = metric(key).column
    return next((iou, stat) for iou, stat, col in TASK_STATS if col == column)


class Cells:
    """Per-image values of one codec label at each of its grid points, read once."""

    def __init__(self, store, points, label: str, metrics: list[str]):
        from bench.labels import codec_name
        from bench.metrics import capped_psnr

        frame = points.frame[points.frame["codec"] == label].sort_values("grid_index")
        self.label = label
        self.qualities = list(dict.fromkeys(frame["quality"]))
        name, version = codec_name(label), points.versions[label]
        wanted = set(points.image_ids)
        self.bits: dict[str, dict[int, tuple[int, int]]] = {}
        self.picture: dict[tuple[str, str], dict[int, float]] = {}
        self.dets: dict[tuple[str, str], dict[int, list[dict]]] = {}
        for q in self.qualities:
            rows = [r for r in store.results(name, version, [q], label=label)
                    if r.ok and r.image_id in wanted]
            self.bits[q] = {r.image_id: (8 * r.bytes, r.width * r.height) for r in rows}
            for m in metrics:
                if metric(m).task is None:
                    attr = metric(m).column
                    cap = capped_psnr if attr != "ms_ssim" else float
                    self.picture[(m, q)] = {r.image_id: cap(getattr(r, attr)) for r in rows}
        for task in {metric(m).task for m in metrics} - {None}:
            keys = points.frame.loc[(points.frame["codec"] == label)
                                    & (points.frame["task"] == task), "model_key"].unique()
            if len(keys) != 1:
                raise SystemExit(f"{label}: {len(keys)} {task} models in the store; this "
                                 "script takes exactly one")
            for q in self.qualities:
                ok, _bad = store.predictions(name, version, q, task, keys[0], wanted)
                self.dets[(task, q)] = {i: json.loads(t) for i, t in ok.items()}

    def curve(self, key: str, draw: list[int], gt=None, evaluator: str = "pycocotools"):
        """The codec's Curve on the drawn images (``gt``: their COCO, for AP)."""
        from bench.report.bd import Curve
        from bench.tasks.cocoeval import evaluate

        rates, values = [], []
        for q in self.qualities:
            bits = [self.bits[q][i] for i in draw if i in self.bits[q]]
            rates.append(sum(b for b, _ in bits) / sum(p for _, p in bits))
            if metric(key).task is None:
                v = [self.picture[(key, q)][i] for i in draw if i in self.bits[q]]
                v = [x for x in v if not math.isnan(x)]
                values.append(statistics.fmean(v) if v else math.nan)
            else:
                iou, stat = coco_stat(key)
                dets = self.dets[(metric(key).task, q)]
                results = [{**d, "image_id": k + 1} for k, i in enumerate(draw)
                           for d in dets.get(i, [])]
                with warnings_off():
                    stats = evaluate(gt, results, list(range(1, len(draw) + 1)), iou,
                                     evaluator)
                values.append(float(stats.get(stat, math.nan)))
        return Curve(tuple(rates), tuple(values), tuple(self.qualities))


@contextlib.contextmanager
def warnings_off():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def resampled_gt(coco, draw: list[int]):
    """A pycocotools COCO holding the ground truth of ``draw`` (ids 1..n, repeats copied)."""
    from pycocotools.coco import COCO

    images, anns = [], []
    for k, image_id in enumerate(draw):
        img = coco.imgs[image_id]
        images.append({**img, "id": k + 1})
        for a in coco.imgToAnns[image_id]:
            anns.append({**a, "image_id": k + 1, "id": len(anns) + 1})
    gt = COCO()
    gt.dataset = {"images": images, "annotations": anns,
                  "categories": list(coco.dataset["categories"])}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    return gt


def main(argv: list[str] | None = None) -> int:
    from bench.report.points import METRICS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run-dir", required=True)
    p.add_argument("--anchor", required=True, help="anchor codec label")
    p.add_argument("--codec", action="append", required=True, help="codec label (repeatable)")
    p.add_argument("--metric", action="append", choices=list(METRICS),
                   help="quality axis (repeatable; default det-ap and roi-psnr)")
    p.add_argument("--replicates", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--coco-eval", default="pycocotools",
                   choices=["pycocotools", "faster-coco-eval"])
    p.add_argument("--data-root", default=os.environ.get(
        "BENCH_DATA_ROOT", str(Path(__file__).resolve().parents[2] / "shared/data/coco")))
    p.add_argument("--split", default="val2017")
    args = p.parse_args(argv)
    metrics = args.metric or ["det-ap", "roi-psnr"]
    if args.replicates < 1:
        p.error("--replicates must be at least 1")

    from bench.data.coco import CocoDataset
    from bench.report.bd import Curve, bd
    from bench.report.points import ReportError, build_points, curves
    from bench.store import ResultsStore

    labels = [args.anchor, *[c for c in args.codec if c != args.anchor]]
    coco = CocoDataset(args.data_root, args.split).coco
    with ResultsStore(args.run_dir) as store:
        try:
            points = build_points(store, codecs=labels, coco=coco)
        except ReportError as exc:
            p.error(str(exc))
        cells = {lab: Cells(store, points, lab, metrics) for lab in labels}
    ids = list(points.image_ids)
    print(f"{len(ids)} images, {args.replicates} resamples (seed {args.seed}), "
          f"anchor {args.anchor}", flush=True)

    # all images: the report's curves, then this script's own from the same rows (a check)
    full: dict[tuple[str, str], float] = {}
    needs_gt = any(metric(m).task for m in metrics)  # AP: ground truth per resample
    gt_all = resampled_gt(coco, ids) if needs_gt else None
    for m in metrics:
        report = curves(points, METRICS[m])
        for lab in labels[1:]:
            a, t = report[args.anchor], report[lab]
            full[(m, lab)] = bd(Curve(tuple(a[1]), tuple(a[2]), tuple(a[0])),
                                Curve(tuple(t[1]), tuple(t[2]), tuple(t[0]))).bd_rate
            own = bd(cells[args.anchor].curve(m, ids, gt_all, args.coco_eval),
                     cells[lab].curve(m, ids, gt_all, args.coco_eval)).bd_rate
            if not math.isclose(own, full[(m, lab)], rel_tol=1e-6, abs_tol=1e-6):
                raise SystemExit(f"{lab} {m}: this script gives {own:+.4f} % on all images, "
                                 f"the report {full[(m, lab)]:+.4f} %: they must agree")

    rng = np.random.default_rng(args.seed)
    samples: dict[tuple[str, str], list[float]] = {k: [] for k in full}
    for r in range(args.replicates):
        draw = [int(i) for i in rng.choice(ids, size=len(ids), replace=True)]
        gt = resampled_gt(coco, draw) if needs_gt else None
        for m in metrics:
            anchor = cells[args.anchor].curve(m, draw, gt, args.coco_eval)
            for lab in labels[1:]:
                samples[(m, lab)].append(
                    bd(anchor, cells[lab].curve(m, draw, gt, args.coco_eval)).bd_rate)
        if (r + 1) % max(1, args.replicates // 10) == 0:
            print(f"  {r + 1}/{args.replicates} resamples", file=sys.stderr, flush=True)

    width = max(len(lab) for lab in labels)
    print(f"{'metric':>9}  {'codec':<{width}}  {'all images':>10}  {'median':>8}  "
          f"{'95 % interval':>19}  {'P(<0)':>6}  undefined")
    for (m, lab), values in samples.items():
        ok = np.array([v for v in values if math.isfinite(v)])
        lo, mid, hi = (np.percentile(ok, [2.5, 50, 97.5]) if len(ok) else [math.nan] * 3)
        below = float((ok < 0).mean()) if len(ok) else math.nan
        print(f"{m:>9}  {lab:<{width}}  {full[(m, lab)]:+9.2f}%  {mid:+7.2f}%  "
              f"[{lo:+7.2f}, {hi:+7.2f}]%  {below:6.2f}  {len(values) - len(ok)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
