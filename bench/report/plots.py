"""Rate–quality figures: one per metric (and task model), every codec, PNG and PDF.

Each codec's points are drawn in grid order (low → high rate) and joined by lines, so a
non-monotonic curve shows as such; the points BD-rate leaves out as dominated
(:func:`bench.report.bd.dominated`) are drawn hollow, with a legend entry saying so. The rate
axis is logarithmic (codecs span two decades of bpp). For task metrics the uncompressed
ceiling (the ``original`` codec: the source JPEGs) is a dashed horizontal line.

Two styles (:data:`STYLES`):

* ``screen`` (default): 6.4 × 4.4 in with a title and the legend inside the axes;
* ``paper``: a single-column figure, 3.5 in wide, drawn at its printed size so every text
  is at least :data:`PAPER_MIN_FONT_PT` pt when placed at ``\\columnwidth``; no title (the
  caption says it), the legend under the axes, outside the curves; PNG at 300 dpi.

This is the only module that imports matplotlib; it draws on ``Figure`` objects directly
(no pyplot state), so it works headless and in threads. PDFs embed TrueType fonts (not
Type 3), as publishers' PDF checks require.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.report.bd import dominated
from bench.report.points import METRICS, Points, ceiling, curves, metric_models

_RATE_LABELS = {"pooled": "rate (bpp, pooled: Σ bits / Σ pixels)",
                "mean": "rate (bpp, mean over images)"}
_SHORT_RATE_LABELS = {"pooled": "rate (bpp)", "mean": "rate (mean bpp)"}
_MARKERS = "osD^v<>pPX*h"
#: The smallest font size of a paper figure, in points at its printed width.
PAPER_MIN_FONT_PT = 8.0
#: Names of the figure styles (see the module docstring).
STYLES = ("screen", "paper")
#: Legend text of the hollow markers.
DOMINATED_LABEL = "dominated (not in BD)"


@dataclass(frozen=True)
class FigureStyle:
    """Size, fonts and layout of one figure style."""

    width_in: float
    height_in: float
    font_pt: float
    title: bool
    legend_outside: bool
    png_dpi: int
    linewidth: float
    markersize: float
    short_labels: bool


_STYLES = {
    "screen": FigureStyle(6.4, 4.4, 8.0, True, False, 150, 1.4, 4.5, False),
    "paper": FigureStyle(3.5, 2.4, PAPER_MIN_FONT_PT, False, True, 300, 1.0, 3.5, True),
}

#: The colours of the codecs, in the order codecs appear (matplotlib's tab10): the HTML
#: report uses the same ones, so a codec has one colour in every figure.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")


def codec_colours(codecs: Sequence[str]) -> dict[str, str]:
    """A fixed colour per codec label, the same in every figure of a report."""
    return {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(codecs)}


def _style(codecs: Sequence[str]) -> dict[str, tuple[str, str]]:
    """A fixed (colour, marker) per codec, the same in every figure of a report."""
    colours = codec_colours(codecs)
    return {c: (colours[c], _MARKERS[i % len(_MARKERS)]) for i, c in enumerate(codecs)}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def rd_figure(points: Points, metric_key: str, *, rate: str = "pooled", model_key: str = "",
              style: str = "screen"):
    """The RD figure of one metric (and task model) as a matplotlib ``Figure``, or None
    when no codec has a value on it."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    if style not in _STYLES:
        raise ValueError(f"unknown figure style {style!r}; choose from {', '.join(STYLES)}")
    fs = _STYLES[style]
    metric = METRICS[metric_key]
    cv = curves(points, metric, rate, model_key)
    cv = {c: v for c, v in cv.items() if any(math.isfinite(y) for y in v[2])}
    if not cv:
        return None
    marks = _style(points.codecs())
    fig = Figure(figsize=(fs.width_in, fs.height_in), layout="constrained")
    ax = fig.add_subplot()
    any_dominated = False
    handles, labels = [], []
    for codec, (_, xs, ys) in cv.items():
        colour, marker = marks[codec]
        drop = dominated(xs, ys)
        ax.plot(xs, ys, color=colour, linewidth=fs.linewidth)
        for hollow in (False, True):
            idx = [i for i, d in enumerate(drop) if d == hollow]
            if not idx:
                continue
            any_dominated |= hollow
            ax.plot([xs[i] for i in idx], [ys[i] for i in idx], linestyle="none",
                    marker=marker, markersize=fs.markersize + hollow,
                    markerfacecolor="white" if hollow else colour, markeredgecolor=colour,
                    markeredgewidth=fs.linewidth if hollow else 0.5)
        handles.append(Line2D([], [], color=colour, marker=marker, linewidth=fs.linewidth,
                              markersize=fs.markersize))
        labels.append(codec)
    if metric.task is not None:
        for codec, value in ceiling(points, metric, model_key).items():
            if math.isfinite(value):
                bpp = float(points.frame.loc[points.frame["codec"] == codec,
                                             f"bpp_{rate}"].iloc[0])
                label = (f"{codec}: {value:.1f}" if fs.short_labels else
                         f"{codec} (uncompressed, {bpp:.2f} bpp): {value:.1f}")
                ax.axhline(value, color="0.35", linestyle="--", linewidth=fs.linewidth * 0.8,
                           label=label)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel((_SHORT_RATE_LABELS if fs.short_labels else _RATE_LABELS)[rate],
                  fontsize=fs.font_pt + (0 if fs.short_labels else 1))
    ax.set_ylabel(metric.axis_label, fontsize=fs.font_pt + (0 if fs.short_labels else 1))
    ax.tick_params(labelsize=fs.font_pt)
    if fs.title:
        title = f"{metric.label} vs rate, {len(points.image_ids)} images"
        if model_key:
            model = points.frame.loc[points.frame["model_key"] == model_key, "model"].iloc[0]
            title += f"\n{metric.task} model {model}"
        ax.set_title(title, fontsize=fs.font_pt + 2)
    ax.grid(True, which="major", alpha=0.4, linewidth=0.6)
    ax.grid(True, which="minor", alpha=0.15, linewidth=0.4)
    more = ax.get_legend_handles_labels()  # the ceiling lines
    handles += more[0]
    labels += more[1]
    if any_dominated:
        handles.append(Line2D([], [], linestyle="none", marker="o", markersize=fs.markersize,
                              markerfacecolor="white", markeredgecolor="0.3"))
        labels.append(DOMINATED_LABEL)
    if fs.legend_outside:
        ncols = min(2, len(labels))
        fig.legend(handles, labels, loc="outside lower center", ncols=ncols,
                   fontsize=fs.font_pt, frameon=False, handlelength=1.6, columnspacing=1.0,
                   handletextpad=0.4)
        rows = math.ceil(len(labels) / ncols)
        fig.set_size_inches(fs.width_in, fs.height_in + 0.17 * rows)
    else:
        ax.legend(handles, labels, fontsize=fs.font_pt, loc="best")
    return fig


def plot_metric(points: Points, metric_key: str, out_dir: str | Path, *, rate: str = "pooled",
                model_key: str = "", stem: str | None = None,
                style: str = "screen") -> list[Path]:
    """Draw one RD figure; returns the PNG and PDF paths written (none without data)."""
    from matplotlib import rc_context

    fig = rd_figure(points, metric_key, rate=rate, model_key=model_key, style=style)
    if fig is None:
        return []
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = stem or f"rd_{metric_key}"
    paths = [out / f"{stem}.png", out / f"{stem}.pdf"]
    fig.savefig(paths[0], dpi=_STYLES[style].png_dpi)
    with rc_context({"pdf.fonttype": 42}):  # TrueType, not Type 3: camera-ready checks
        fig.savefig(paths[1], metadata={"CreationDate": None})
    return paths


def figure_stem(points: Points, metric_key: str, model_key: str) -> str:
    """The file stem of a metric's figure: ``rd_<metric>``, plus the model where a task has
    several."""
    stem = f"rd_{metric_key}"
    if len(metric_models(points, METRICS[metric_key])) > 1:
        stem += "_" + _slug(model_key.split(":")[0].rsplit(".", 1)[0])
    return stem


def plot_all(points: Points, out_dir: str | Path, *, rate: str = "pooled",
             metrics: Sequence[str] | None = None, style: str = "screen") -> list[Path]:
    """One figure per metric (per model where a task has several); the paths written.

    ``metrics`` limits the figures to those metric keys (default: every metric with values).
    """
    written: list[Path] = []
    for key in metrics or METRICS:
        for model_key in metric_models(points, METRICS[key]):
            written += plot_metric(points, key, out_dir, rate=rate, model_key=model_key,
                                   stem=figure_stem(points, key, model_key), style=style)
    return written
