"""Bootstrap intervals of BD values over a run's images (``bench report --bootstrap N``).

A BD-rate measured on a few dozen pictures moves with the pictures chosen, most of all on
AP. This module says how far: it draws ``replicates`` resamples of the report's common
images with replacement (seeded, so a report is reproducible) and, on each, scores every
(codec, grid point) again from the rows and predictions already in the store:

* the rate: pooled bpp (bits of the drawn images over their pixels) or the mean of their bpp,
  as the report's ``--rate``;
* a picture metric: the mean of the drawn images' values, PSNR-type values capped as in the
  summaries (:func:`bench.summary.psnr_mean`);
* COCO AP: the stored predictions evaluated against a ground truth holding the drawn images,
  an image drawn twice copied under a fresh id (with its annotations and predictions), so it
  counts twice. Images whose prediction failed are left out of a point's evaluation, as in
  :func:`bench.scoring.score`.

The BD values are then computed as the report computes them (same method, rate axis and
non-monotonic policy). Reported per value: the 2.5th and 97.5th percentiles of the resamples
(the 95 % percentile interval; Efron and Tibshirani, *An Introduction to the Bootstrap*, 1993,
ch. 13), their median, the share of resamples with a negative BD-rate and how many resamples
gave no value (curves without overlap). Nothing is coded or predicted again.

The interval covers the sampling of pictures only: not the drift of int8 detectors between
CPU kinds, nor a codec's training seed.

Made for runs of tens to hundreds of images: the stored predictions of every point of an
axis are held in memory while it is resampled, and each resample evaluates every point's AP
again (on 79 images about 0.8 s per point with pycocotools, 0.14 s with faster-coco-eval).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from bench.report.bd import Curve, bd

#: Coverage of the percentile interval, in percent.
CONFIDENCE = 95.0
#: Columns a bootstrap adds to a BD table (:func:`bench.report.bd.bd_table`'s frame).
BOOTSTRAP_COLUMNS = ("bootstrap", "bootstrap_seed", "bd_rate_low", "bd_rate_median",
                     "bd_rate_high", "bd_rate_below_zero", "bd_metric_low", "bd_metric_median",
                     "bd_metric_high", "bd_rate_undefined", "bd_metric_undefined")

#: Text columns of the intervals (``bd_rate_ci``, ``bd_metric_ci``), left out of CSV.
INTERVAL_TEXT = ("bd_rate_ci", "bd_metric_ci")


@dataclass(frozen=True)
class Intervals:
    """The bootstrap of a report: resamples, seed, and per axis (metric key, task model key)
    the intervals of every codec label against the anchor (:func:`bootstrap_bd`)."""

    replicates: int
    seed: int
    by_axis: dict[tuple[str, str], dict[str, tuple[Interval, Interval]]]

    def caption(self) -> str:
        """The sentence a table's title gets."""
        return (f"{CONFIDENCE:.0f} % intervals from {self.replicates} resamples of the images "
                f"(seed {self.seed})")


class BootstrapError(ValueError):
    """The store cannot give this bootstrap; the message says why and what to do."""


@dataclass(frozen=True)
class Interval:
    """The bootstrap distribution of one BD value, summarized.

    ``below_zero`` is the share of defined resamples under 0 (for a BD-rate: how often the
    codec needed less rate than the anchor); ``undefined`` counts resamples with no value.
    """

    low: float
    median: float
    high: float
    below_zero: float
    undefined: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Interval:
        """The summary of ``values`` (NaN entries are the undefined resamples)."""
        ok = np.array([v for v in values if math.isfinite(v)], dtype=float)
        if not len(ok):
            return cls(math.nan, math.nan, math.nan, math.nan, len(values))
        tail = (100.0 - CONFIDENCE) / 2
        low, median, high = np.percentile(ok, [tail, 50.0, 100.0 - tail])
        return cls(float(low), float(median), float(high), float((ok < 0).mean()),
                   len(values) - len(ok))


class CodecCells:
    """Per-image rates and values of one codec label at its grid points, read once.

    ``qualities`` are the label's points in grid order (as the report's curve has them);
    ``metric`` is a :class:`bench.report.points.Metric`; ``model_key`` picks the task model.
    """

    def __init__(self, store, label: str, version: str, qualities: Sequence[str], metric,
                 model_key: str, image_ids: Sequence[int]):
        from bench.labels import codec_name
        from bench.metrics import MS_SSIM_SKIPPED

        self.label, self.metric, self.qualities = label, metric, list(qualities)
        self.model_key = model_key
        wanted = set(image_ids)
        name = codec_name(label)
        #: {quality: {image id: (bits, pixels, bpp)}}
        self.bits: dict[str, dict[int, tuple[int, int, float]]] = {}
        #: {quality: {image id: value}} of a picture metric (None: MS-SSIM skipped)
        self.values: dict[str, dict[int, float | None]] = {}
        #: {quality: {image id: [detections]}} of a task metric
        self.predictions: dict[str, dict[int, list[dict]]] = {}
        for q in self.qualities:
            rows = [r for r in store.results(name, version, [q], label=label)
                    if r.ok and r.image_id in wanted]
            missing = wanted - {r.image_id for r in rows}
            if missing:
                raise BootstrapError(f"{label} {q}: no stored row for {len(missing)} of the "
                                     f"report's images (e.g. {min(missing)})")
            self.bits[q] = {r.image_id: (8 * r.bytes, r.width * r.height, r.bpp)
                            for r in rows}
            if metric.task is None:
                self.values[q] = {
                    r.image_id: (None if metric.column == "ms_ssim"
                                 and MS_SSIM_SKIPPED in (r.notes or "")
                                 else getattr(r, metric.column)) for r in rows}
            else:
                ok, _failed = store.predictions(name, version, q, metric.task, model_key,
                                                wanted)
                self.predictions[q] = {i: json.loads(t) for i, t in ok.items()}

    def curve(self, draw: Sequence[int], rate: str, gt=None,
              evaluator: str = "pycocotools", evaluations: dict | None = None) -> Curve:
        """The label's rate–quality curve on the drawn images.

        ``draw`` lists image ids (repeats allowed); ``gt`` is the ground truth of the draw
        (:func:`resampled_gt`), needed for AP only; ``rate`` is ``pooled`` or ``mean``.
        ``evaluations`` keeps each COCO evaluation's stats for the other metrics it gives
        (AP, AP50 and AP75 come from one bbox evaluation).
        """
        from bench.summary import finite_mean, psnr_mean

        rates, values = [], []
        for q in self.qualities:
            cells = [self.bits[q][i] for i in draw]
            rates.append(sum(b for b, _, _ in cells) / sum(p for _, p, _ in cells)
                         if rate == "pooled" else finite_mean([bpp for _, _, bpp in cells]))
            if self.metric.task is None:
                vals = [self.values[q][i] for i in draw]
                if self.metric.column == "ms_ssim":
                    values.append(math.nan if None in vals else finite_mean(vals))
                else:
                    values.append(psnr_mean(vals))
            else:
                values.append(self._ap(q, draw, gt, evaluator, evaluations))
        return Curve(tuple(rates), tuple(values), tuple(self.qualities))

    def _ap(self, quality: str, draw: Sequence[int], gt, evaluator: str,
            evaluations: dict | None) -> float:
        from bench.report.points import TASK_STATS
        from bench.tasks.cocoeval import evaluate

        iou, stat = next((i, s) for i, s, col in TASK_STATS if col == self.metric.column)
        key = (self.label, quality, self.model_key, iou, evaluator, tuple(draw))
        stats = evaluations.get(key) if evaluations is not None else None
        if stats is None:
            found = self.predictions[quality]
            scored = [k + 1 for k, i in enumerate(draw) if i in found]
            if not scored:
                return math.nan
            results = [{**d, "image_id": k + 1} for k, i in enumerate(draw) if i in found
                       for d in found[i]]
            with warnings.catch_warnings():  # "no detections": AP 0, as the report gives it
                warnings.simplefilter("ignore")
                stats = evaluate(gt, results, scored, iou, evaluator)
            if evaluations is not None:
                evaluations[key] = stats
        return float(stats.get(stat, math.nan))


def resampled_gt(coco, draw: Sequence[int]):
    """A pycocotools ``COCO`` of the drawn images: ids 1..n in draw order, an image drawn
    twice copied with its annotations under each of its ids."""
    from pycocotools.coco import COCO

    images, anns = [], []
    for k, image_id in enumerate(draw):
        images.append({**coco.imgs[image_id], "id": k + 1})
        for a in coco.imgToAnns[image_id]:
            anns.append({**a, "image_id": k + 1, "id": len(anns) + 1})
    gt = COCO()
    gt.dataset = {"images": images, "annotations": anns,
                  "categories": list(coco.dataset["categories"])}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    return gt


def draws(image_ids: Sequence[int], replicates: int, seed: int) -> list[list[int]]:
    """``replicates`` resamples of ``image_ids`` with replacement, each as long as the set;
    the same for every metric of a report (one generator seeded with ``seed``)."""
    rng = np.random.default_rng(seed)
    ids = list(image_ids)
    return [[int(i) for i in rng.choice(ids, size=len(ids), replace=True)]
            for _ in range(replicates)]


def bootstrap_bd(points, store, coco, metric_key: str, anchor: str, *, replicates: int,
                 seed: int = 0, method: str = "pchip", rate: str = "pooled",
                 policy: str = "pareto", model_key: str = "", evaluator: str = "pycocotools",
                 expected: dict[str, tuple[float, float]] | None = None,
                 advance: Callable[[], None] | None = None, evaluations: dict | None = None
                 ) -> dict[str, tuple[Interval, Interval]]:
    """{codec label: (BD-rate interval, BD-metric interval)} against ``anchor``.

    ``points`` is the report's points table (``--images common``), ``store`` its results
    store, ``coco`` the ground truth (for AP). ``expected`` maps labels to the table's
    (BD-rate, BD-metric) on all images: the curves rebuilt here from per-image values must
    give them, or :class:`BootstrapError` says they do not (a guard against the two
    computations drifting apart). ``advance`` is called after each resample (progress).
    ``evaluations``, a dict shared by the calls of one report, keeps every COCO evaluation's
    stats so that the next AP metric of the same evaluation (det-ap50 after det-ap, on the
    same draws) reads them instead of evaluating again.
    """
    from bench.report.points import METRICS, curves

    if replicates < 1:
        raise BootstrapError(f"--bootstrap {replicates}: needs at least 1 resample")
    metric = METRICS[metric_key]
    table = curves(points, metric, rate, model_key)
    if anchor not in table:
        raise BootstrapError(f"anchor {anchor!r} has no {metric_key} points")
    ids = list(points.image_ids)
    cells = {label: CodecCells(store, label, points.versions[label], qualities, metric,
                               model_key, ids)
             for label, (qualities, _, _) in table.items()}
    tests = [label for label in cells if label != anchor]
    needs_gt = metric.task is not None

    def values(draw: list[int]) -> dict[str, tuple[float, float]]:
        gt = resampled_gt(coco, draw) if needs_gt else None
        base = cells[anchor].curve(draw, rate, gt, evaluator, evaluations)
        out = {}
        for label in tests:
            res = bd(base, cells[label].curve(draw, rate, gt, evaluator, evaluations),
                     method, policy)
            out[label] = (res.bd_rate, res.bd_metric)
        return out

    if expected:
        for label, got in values(ids).items():
            want = expected.get(label)
            if want is not None and not all(
                    (math.isnan(g) and math.isnan(w))
                    or math.isclose(g, w, rel_tol=1e-6, abs_tol=1e-6)
                    for g, w in zip(got, want, strict=True)):
                raise BootstrapError(
                    f"{label} {metric_key}: per-image values give BD {got[0]:+.4f} % / "
                    f"{got[1]:+.4f} on all images, the table {want[0]:+.4f} % / "
                    f"{want[1]:+.4f}; the store changed under the report, or this is a bug")
    samples: dict[str, list[tuple[float, float]]] = {label: [] for label in tests}
    for draw in draws(ids, replicates, seed):
        for label, pair in values(draw).items():
            samples[label].append(pair)
        if advance is not None:
            advance()
    return {label: (Interval.of([r for r, _ in pairs]), Interval.of([m for _, m in pairs]))
            for label, pairs in samples.items()}


def add_intervals(frame, intervals: dict[str, tuple[Interval, Interval]], replicates: int,
                  seed: int):
    """``frame`` (a BD table) with :data:`BOOTSTRAP_COLUMNS` and, for tables read by people,
    the interval texts :data:`INTERVAL_TEXT` (``[-25.10, +20.10]``); rows without an interval
    (the anchor, a ceiling) stay empty."""
    from bench.report.points import METRICS

    frame = frame.copy()
    fmt = {"dB": "{:+.3f}", "%": "{:+.2f}"}.get(METRICS[frame["metric"].iloc[0]].unit,
                                                 "{:+.4f}")
    columns: dict[str, list] = {c: [] for c in (*BOOTSTRAP_COLUMNS, *INTERVAL_TEXT)}
    for codec in frame["codec"]:
        pair = intervals.get(codec)
        r, m = pair if pair else (None, None)
        nan = math.nan
        columns["bootstrap"].append(replicates if pair else 0)
        columns["bootstrap_seed"].append(seed)
        columns["bd_rate_low"].append(r.low if r else nan)
        columns["bd_rate_median"].append(r.median if r else nan)
        columns["bd_rate_high"].append(r.high if r else nan)
        columns["bd_rate_below_zero"].append(r.below_zero if r else nan)
        columns["bd_metric_low"].append(m.low if m else nan)
        columns["bd_metric_median"].append(m.median if m else nan)
        columns["bd_metric_high"].append(m.high if m else nan)
        columns["bd_rate_undefined"].append(r.undefined if r else 0)
        columns["bd_metric_undefined"].append(m.undefined if m else 0)
        columns["bd_rate_ci"].append(_span(r, "{:+.2f}"))
        columns["bd_metric_ci"].append(_span(m, fmt))
    for key, col in columns.items():
        frame[key] = col
    return frame


def without_interval_text(frame):
    """``frame`` without the interval texts (:data:`INTERVAL_TEXT`), for CSV: the numbers
    are in :data:`BOOTSTRAP_COLUMNS` already."""
    return frame.drop(columns=[c for c in INTERVAL_TEXT if c in frame])


def _span(interval: Interval | None, fmt: str) -> str:
    if interval is None or not math.isfinite(interval.low):
        return ""
    return f"[{fmt.format(interval.low)}, {fmt.format(interval.high)}]"
