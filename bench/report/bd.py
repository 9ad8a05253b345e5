"""Bjøntegaard-delta rate and metric between two rate–quality curves.

BD-rate is the mean difference of log-rate between two curves over the range of quality both
reach, expressed as a rate change in percent; BD-metric (BD-PSNR for PSNR) is the mean
difference of quality over the range of log-rate both span (G. Bjøntegaard, "Calculation of
average PSNR differences between RD-curves", VCEG-M33, 2001). How the curves are interpolated
is the ``method``:

* ``pchip`` (default): piecewise cubic Hermite interpolation with Fritsch–Carlson monotone
  slopes (SciPy's ``PchipInterpolator``), the interpolation the JVET common test conditions
  use in their BD-rate spreadsheet (Bossen, JCTVC-L1100; see Herglotz et al., "The Bjøntegaard
  Bible", 2024);
* ``akima``: Akima (1970) splines, linear for two points (as the ``bjontegaard`` package);
* ``cubic``: the least-squares cubic polynomial of VCEG-M33 (needs four points or more).

The conventions are those of the ``bjontegaard`` package 1.3 (Herglotz et al.), so results
agree with it: rates enter as ``log10``, the integration interval is the overlap of the two
curves along the integration axis, and the overlap reported is that interval's length over
the length of the union of both ranges. Where the curves do not overlap the value is NaN with
the reason.

Curves are taken in the order given (low to high rate). Points are never reordered silently:
a curve whose rate or quality is not strictly increasing in that order is *non-monotonic*,
and the ``non_monotonic`` policy says what happens: ``pareto`` (default) drops the dominated
points (those another point beats on both rate and quality) and names them in the note,
``nan`` gives no value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

METHODS = ("pchip", "akima", "cubic")
POLICIES = ("pareto", "nan")


@dataclass(frozen=True)
class Curve:
    """Rate–quality points of one codec in grid order (low → high rate), with their labels."""

    rate: tuple[float, ...]
    metric: tuple[float, ...]
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.rate) != len(self.metric):
            raise ValueError(f"{len(self.rate)} rates but {len(self.metric)} metric values")
        if not self.labels:
            object.__setattr__(self, "labels", tuple(str(i) for i in range(len(self.rate))))
        elif len(self.labels) != len(self.rate):
            raise ValueError(f"{len(self.labels)} labels for {len(self.rate)} points")


@dataclass(frozen=True)
class Prepared:
    """A curve cleaned for integration: strictly increasing in rate and metric."""

    log_rate: np.ndarray
    metric: np.ndarray
    monotonic: bool
    #: human-readable notes: points left out and why
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class BDResult:
    """One BD comparison of a test curve against an anchor curve.

    ``bd_rate`` is in percent (negative: the test needs less rate for the same quality);
    ``bd_metric`` is in the metric's unit (positive: better quality at the same rate).
    The overlaps are in percent of the union of both curves' ranges: along the metric axis
    for BD-rate, along the log-rate axis for BD-metric.
    """

    bd_rate: float
    rate_overlap: float
    bd_metric: float
    metric_overlap: float
    anchor_monotonic: bool
    test_monotonic: bool
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def monotonic(self) -> bool:
        """True when both curves were strictly increasing as given."""
        return self.anchor_monotonic and self.test_monotonic

    @property
    def note(self) -> str:
        """All notes joined into one cell."""
        return "; ".join(self.notes)


def is_monotonic(rate: Sequence[float], metric: Sequence[float]) -> bool:
    """Whether rate and metric both strictly increase along the given order."""
    r, m = np.asarray(rate, float), np.asarray(metric, float)
    return bool(np.all(np.diff(r) > 0) and np.all(np.diff(m) > 0))


def _usable(r: float | None, m: float | None) -> bool:
    return r is not None and m is not None and math.isfinite(r) and math.isfinite(m) and r > 0


def curve_monotonic(curve: Curve) -> bool:
    """Whether the curve's usable points (finite, positive rate) strictly increase as given."""
    pts = [(r, m) for r, m in zip(curve.rate, curve.metric, strict=True) if _usable(r, m)]
    return is_monotonic([r for r, _ in pts], [m for _, m in pts])


def pareto_keep(rate: Sequence[float], metric: Sequence[float]) -> list[int]:
    """Indices of the non-dominated points, in increasing rate.

    A point is dominated when another has no more rate and no less quality (and differs in
    one of them), or repeats an earlier point exactly. What is left is strictly increasing in
    both rate and metric: the best operating points the codec offers.
    """
    keep = []
    for i, (ri, mi) in enumerate(zip(rate, metric, strict=True)):
        dominated = False
        for j, (rj, mj) in enumerate(zip(rate, metric, strict=True)):
            if j == i:
                continue
            if rj <= ri and mj >= mi and (rj < ri or mj > mi or j < i):
                dominated = True
                break
        if not dominated:
            keep.append(i)
    return sorted(keep, key=lambda k: rate[k])


def dominated(rate: Sequence[float], metric: Sequence[float]) -> list[bool]:
    """Per point, whether BD-rate leaves it out of the curve as dominated (``pareto`` policy).

    These are the points :func:`prepare` drops from a non-monotonic curve: another usable
    point has no more rate and no less quality. A point without a usable value (missing,
    infinite, non-positive rate) is not drawn anyway and is not flagged; a curve that is
    strictly increasing as given has no dominated point. Figures and the HTML report draw
    the flagged points differently, so a reader sees what the BD values rest on.
    """
    idx = [i for i, (r, m) in enumerate(zip(rate, metric, strict=True)) if _usable(r, m)]
    r = [float(rate[i]) for i in idx]
    m = [float(metric[i]) for i in idx]
    out = [False] * len(rate)
    if is_monotonic(r, m):
        return out
    kept = set(pareto_keep(r, m))
    for k, i in enumerate(idx):
        out[i] = k not in kept
    return out


def prepare(curve: Curve, policy: str = "pareto", who: str = "curve") -> Prepared | str:
    """The curve ready for integration, or the reason it cannot be used.

    Points with a missing, infinite (lossless PSNR) or non-positive value are left out and
    named; a non-monotonic curve is handled by ``policy`` (see the module docstring).
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown non-monotonic policy {policy!r}; choose from {POLICIES}")
    notes = []
    idx = []
    for i, (r, m) in enumerate(zip(curve.rate, curve.metric, strict=True)):
        if not _usable(r, m):
            notes.append(f"{who} {curve.labels[i]} left out (rate {r}, metric {m})")
        else:
            idx.append(i)
    rate = [float(curve.rate[i]) for i in idx]
    metric = [float(curve.metric[i]) for i in idx]
    labels = [curve.labels[i] for i in idx]
    monotonic = is_monotonic(rate, metric)
    if not monotonic:
        if policy == "nan":
            return f"{who} non-monotonic ({_first_break(rate, metric, labels)})"
        kept = pareto_keep(rate, metric)
        dropped = [labels[i] for i in range(len(rate)) if i not in kept]
        notes.append(f"{who} non-monotonic: dominated {', '.join(dropped)} dropped"
                     if dropped else f"{who} non-monotonic in the given order: points "
                     "taken in rate order")
        rate = [rate[i] for i in kept]
        metric = [metric[i] for i in kept]
    if len(rate) < 2:
        return f"{who} has {len(rate)} usable point(s), needs 2"
    return Prepared(np.log10(np.asarray(rate)), np.asarray(metric), monotonic, tuple(notes))


def _first_break(rate: list[float], metric: list[float], labels: list[str]) -> str:
    for i in range(1, len(rate)):
        if not (rate[i] > rate[i - 1] and metric[i] > metric[i - 1]):
            return f"{labels[i - 1]}→{labels[i]}: rate {rate[i - 1]:.4g}→{rate[i]:.4g}, " \
                   f"metric {metric[i - 1]:.4g}→{metric[i]:.4g}"
    return "no break"


class _Poly:
    """The cubic least-squares fit of VCEG-M33 with its exact integral."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.coef = np.polyfit(x, y, 3)
        self.prim = np.polyint(self.coef)

    def integrate(self, a: float, b: float) -> float:
        """The exact integral of the fitted cubic from a to b."""
        return float(np.polyval(self.prim, b) - np.polyval(self.prim, a))


def interpolant(x: np.ndarray, y: np.ndarray, method: str):
    """An object with ``integrate(a, b)`` interpolating y(x); x strictly increasing."""
    from scipy import interpolate

    if method == "pchip":
        return interpolate.PchipInterpolator(x, y)
    if method == "akima":
        if len(x) > 2:
            return interpolate.Akima1DInterpolator(x, y)
        return interpolate.make_interp_spline(x, y, k=1)
    if method == "cubic":
        return _Poly(x, y)
    raise ValueError(f"unknown BD method {method!r}; choose from {', '.join(METHODS)}")


def overlap(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """(low, high, fraction): the common interval of two ranges and its share of their union."""
    lo, hi = max(a.min(), b.min()), min(a.max(), b.max())
    union = max(a.max(), b.max()) - min(a.min(), b.min())
    frac = max(hi - lo, 0.0) / union if union > 0 else 0.0
    return float(lo), float(hi), float(frac)


def bd_delta(xa: np.ndarray, ya: np.ndarray, xt: np.ndarray, yt: np.ndarray,
             method: str) -> tuple[float, float]:
    """(mean of y_test − y_anchor over the x overlap, overlap fraction); NaN without overlap."""
    lo, hi, frac = overlap(xa, xt)
    if frac <= 0:
        return math.nan, 0.0
    ia = interpolant(xa, ya, method).integrate(lo, hi)
    it = interpolant(xt, yt, method).integrate(lo, hi)
    return float((it - ia) / (hi - lo)), frac


def bd(anchor: Curve, test: Curve, method: str = "pchip", policy: str = "pareto") -> BDResult:
    """BD-rate (%) and BD-metric of ``test`` against ``anchor``, with overlaps and notes."""
    if method not in METHODS:
        raise ValueError(f"unknown BD method {method!r}; choose from {', '.join(METHODS)}")
    a_mono, t_mono = curve_monotonic(anchor), curve_monotonic(test)
    pa = prepare(anchor, policy, "anchor")
    pt = prepare(test, policy, "test")
    reasons = [p for p in (pa, pt) if isinstance(p, str)]
    if reasons:
        return BDResult(math.nan, math.nan, math.nan, math.nan, a_mono, t_mono, tuple(reasons))
    assert isinstance(pa, Prepared) and isinstance(pt, Prepared)
    notes = list(pa.notes + pt.notes)
    need = 4 if method == "cubic" else 2
    if min(len(pa.metric), len(pt.metric)) < need:
        notes.append(f"cubic fit needs {need} points per curve")
        return BDResult(math.nan, math.nan, math.nan, math.nan, a_mono, t_mono, tuple(notes))
    # BD-rate: log-rate as a function of the metric, integrated over the common metric range
    d_log, f_rate = bd_delta(pa.metric, pa.log_rate, pt.metric, pt.log_rate, method)
    if f_rate <= 0:
        notes.append("no overlap in metric: BD-rate undefined")
    # BD-metric: the metric as a function of log-rate, over the common log-rate range
    d_metric, f_metric = bd_delta(pa.log_rate, pa.metric, pt.log_rate, pt.metric, method)
    if f_metric <= 0:
        notes.append("no overlap in rate: BD-metric undefined")
    rate_pct = (10.0 ** d_log - 1.0) * 100.0 if math.isfinite(d_log) else math.nan
    return BDResult(rate_pct, 100.0 * f_rate, d_metric, 100.0 * f_metric, a_mono, t_mono,
                    tuple(notes))


# ------------------------------------------------------------------ tables of BD values
#: Anchors tried in order when none is named: the first one present in the store is used.
DEFAULT_ANCHORS = ("vtm", "vvc", "jpeg")
#: Below this overlap (percent of the union of both ranges) a BD value rests on a small common
#: range: tables flag it with :data:`LOW_OVERLAP_MARK` and never set it in bold as the best.
LOW_OVERLAP = 75.0
LOW_OVERLAP_MARK = "‡"

BD_COLUMNS = ("metric", "model", "codec", "anchor", "method", "rate_axis", "points", "bd_rate",
              "rate_overlap", "bd_metric", "metric_overlap", "monotonic", "anchor_monotonic",
              "test_monotonic", "note", "images", "rate_flag", "metric_flag")


def low_overlap(overlap) -> bool:
    """Whether an overlap (percent) is finite and below :data:`LOW_OVERLAP`."""
    return isinstance(overlap, float | int) and math.isfinite(overlap) and overlap < LOW_OVERLAP


def overlap_flag(overlap) -> str:
    """:data:`LOW_OVERLAP_MARK` for a low overlap (:func:`low_overlap`), else ``""``."""
    return LOW_OVERLAP_MARK if low_overlap(overlap) else ""


def default_anchor(codecs: Sequence[str]) -> str | None:
    """The first of :data:`DEFAULT_ANCHORS` among ``codecs``, else None."""
    return next((a for a in DEFAULT_ANCHORS if a in codecs), None)


def monotonic_cell(anchor_ok: bool, test_ok: bool) -> str:
    """``yes``, or ``no`` naming the non-monotonic curve(s)."""
    if anchor_ok and test_ok:
        return "yes"
    return "no (" + ", ".join(w for w, ok in (("anchor", anchor_ok), ("test", test_ok))
                              if not ok) + ")"


def bd_table(points, metric_key: str, anchor: str, *, method: str = "pchip",
             rate: str = "pooled", policy: str = "pareto", model_key: str = ""):
    """A DataFrame of BD values of every codec against ``anchor`` on one metric (and model).

    Codecs and the anchor are labels (:mod:`bench.labels`, e.g. ``ggm@roi-none``). The
    anchor's row is its comparison with itself (0 by definition); a ceiling codec
    (``original``) gets a row with its single value in the note and no BD numbers.
    """
    import pandas as pd

    from bench.report.points import METRICS, RATES, ceiling, curves

    metric = METRICS[metric_key]
    cv = curves(points, metric, rate, model_key)
    if anchor not in cv:
        have = ", ".join(cv) or "none"
        raise ValueError(f"anchor {anchor!r} has no {metric_key} points (codecs with points: "
                         f"{have})")
    a_q, a_r, a_m = cv[anchor]
    a_curve = Curve(tuple(a_r), tuple(a_m), tuple(a_q))
    model = ""
    if model_key:
        model = points.frame.loc[points.frame["model_key"] == model_key, "model"].iloc[0]
    base = {"metric": metric_key, "model": model, "anchor": anchor, "method": method,
            "rate_axis": rate, "images": len(points.image_ids)}
    records = []
    for codec in [anchor] + [c for c in cv if c != anchor]:
        q, r, m = cv[codec]
        res = bd(a_curve, Curve(tuple(r), tuple(m), tuple(q)), method, policy)
        if codec == anchor:  # the anchor against itself: say things once, as the anchor's
            notes = ["anchor"] + [n for n in res.notes if n.startswith("anchor")]
            mono = "yes" if res.anchor_monotonic else "no (anchor)"
        else:  # the anchor's own notes stand in its row unless they explain a missing value
            finite = math.isfinite(res.bd_rate) and math.isfinite(res.bd_metric)
            notes = [n for n in res.notes if not (finite and n.startswith("anchor"))]
            mono = monotonic_cell(res.anchor_monotonic, res.test_monotonic)
        records.append({**base, "codec": codec, "points": len(q), "bd_rate": res.bd_rate,
                        "rate_overlap": res.rate_overlap, "bd_metric": res.bd_metric,
                        "metric_overlap": res.metric_overlap, "monotonic": mono,
                        "anchor_monotonic": res.anchor_monotonic,
                        "test_monotonic": res.test_monotonic, "note": "; ".join(notes),
                        "rate_flag": overlap_flag(res.rate_overlap),
                        "metric_flag": overlap_flag(res.metric_overlap)})
    for codec, value in ceiling(points, metric, model_key).items():
        sel = points.frame[points.frame["codec"] == codec]
        bpp = float(sel[RATES[rate]].iloc[0])
        records.append({**base, "codec": codec, "points": 1, "bd_rate": math.nan,
                        "rate_overlap": math.nan, "bd_metric": math.nan,
                        "metric_overlap": math.nan, "monotonic": "", "anchor_monotonic": True,
                        "test_monotonic": True,
                        "note": f"uncompressed ceiling: {metric.label} {value:.4g} at "
                                f"{bpp:.3g} bpp", "rate_flag": "", "metric_flag": ""})
    return pd.DataFrame.from_records(records, columns=list(BD_COLUMNS))


#: Headers of the two overlaps. BD-rate is integrated over the quality range both curves
#: reach, so its overlap (``rate_overlap``) is measured on the quality axis; BD-metric is
#: integrated over the common log-rate range (``metric_overlap``).
QUALITY_OVERLAP_HEADER = "quality overlap (%)"
RATE_OVERLAP_HEADER = "rate overlap (%)"
#: Header of a BD value's bootstrap interval, the column right after the value.
INTERVAL_HEADER = "95 % interval"


def bd_columns(metric_key: str, intervals: bool = False):
    """The :class:`bench.report.tables.Column` list that shows a BD table to people.

    Each BD value carries :data:`LOW_OVERLAP_MARK` when its overlap is below
    :data:`LOW_OVERLAP` and is then never marked as the best of its column. With
    ``intervals``, each BD value is followed by its bootstrap interval
    (:func:`bench.report.bootstrap.add_intervals`).
    """
    from bench.report.points import METRICS
    from bench.report.tables import Column

    metric = METRICS[metric_key]
    unit = f" ({metric.unit})" if metric.unit else ""
    name = f"BD-{metric.short}"
    fmt = {"dB": "{:+.3f}", "%": "{:+.2f}"}.get(metric.unit, "{:+.4f}")
    rate_ci = ([Column("bd_rate_ci", INTERVAL_HEADER, sort_by="bd_rate_median")]
               if intervals else [])
    metric_ci = ([Column("bd_metric_ci", INTERVAL_HEADER, sort_by="bd_metric_median")]
                 if intervals else [])
    return [Column("codec", "codec"), Column("points", "points", "{:d}"),
            Column("bd_rate", "BD-rate (%)", "{:+.2f}", "min", suffix="rate_flag",
                   unranked="rate_flag"), *rate_ci,
            Column("rate_overlap", QUALITY_OVERLAP_HEADER, "{:.0f}"),
            Column("bd_metric", name + unit, fmt, "max", suffix="metric_flag",
                   unranked="metric_flag"), *metric_ci,
            Column("metric_overlap", RATE_OVERLAP_HEADER, "{:.0f}"),
            Column("monotonic", "monotonic"),
            Column("note", "note", latex_spec="footnote")]


def low_overlap_legend() -> str:
    """The sentence under a BD table that explains :data:`LOW_OVERLAP_MARK`."""
    return (f"{LOW_OVERLAP_MARK} overlap below {LOW_OVERLAP:.0f} %: the value rests on a small "
            "common range and is never marked best")
