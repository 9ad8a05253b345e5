"""Rate–quality figures: one per metric (and task model), every codec, PNG and PDF.

Each codec's points are drawn in grid order (low → high rate) and joined by lines, so a
non-monotonic curve shows as such. The rate axis is logarithmic (codecs span two decades of
bpp). For task metrics the uncompressed ceiling (the ``original`` codec: the source JPEGs)
is a dashed horizontal line. This is the only module that imports matplotlib; it draws on
``Figure`` objects directly (no pyplot state), so it works headless and in threads. PDFs
embed TrueType fonts (not Type 3), as publishers' PDF checks require.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

from bench.report.points import METRICS, Points, ceiling, curves, metric_models

_RATE_LABELS = {"pooled": "rate (bpp, pooled: Σ bits / Σ pixels)",
                "mean": "rate (bpp, mean over images)"}
_MARKERS = "osD^v<>pPX*h"


def _style(codecs: Sequence[str]) -> dict[str, tuple[str, str]]:
    """A fixed (colour, marker) per codec, the same in every figure of a report."""
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {c: (cmap(i % 10), _MARKERS[i % len(_MARKERS)]) for i, c in enumerate(codecs)}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def plot_metric(points: Points, metric_key: str, out_dir: str | Path, *, rate: str = "pooled",
                model_key: str = "", stem: str | None = None) -> list[Path]:
    """Draw one RD figure; returns the PNG and PDF paths written (none without data)."""
    from matplotlib import rc_context
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    metric = METRICS[metric_key]
    cv = curves(points, metric, rate, model_key)
    cv = {c: v for c, v in cv.items() if any(math.isfinite(y) for y in v[2])}
    if not cv:
        return []
    style = _style(points.codecs())
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    for codec, (_, xs, ys) in cv.items():
        colour, marker = style[codec]
        ax.plot(xs, ys, marker=marker, color=colour, label=codec, linewidth=1.4,
                markersize=4.5)
    if metric.task is not None:
        for codec, value in ceiling(points, metric, model_key).items():
            if math.isfinite(value):
                bpp = float(points.frame.loc[points.frame["codec"] == codec,
                                             f"bpp_{rate}"].iloc[0])
                ax.axhline(value, color="0.35", linestyle="--", linewidth=1.0,
                           label=f"{codec} (uncompressed, {bpp:.2f} bpp): {value:.1f}")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(_RATE_LABELS[rate])
    ax.set_ylabel(metric.axis_label)
    title = f"{metric.label} vs rate, {len(points.image_ids)} images"
    if model_key:
        model = points.frame.loc[points.frame["model_key"] == model_key, "model"].iloc[0]
        title += f"\n{metric.task} model {model}"
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.4)
    ax.grid(True, which="minor", alpha=0.15)
    ax.legend(fontsize=8, loc="best")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = stem or f"rd_{metric_key}"
    paths = [out / f"{stem}.png", out / f"{stem}.pdf"]
    fig.savefig(paths[0], dpi=150)
    with rc_context({"pdf.fonttype": 42}):  # TrueType, not Type 3: camera-ready checks
        fig.savefig(paths[1], metadata={"CreationDate": None})
    return paths


def plot_all(points: Points, out_dir: str | Path, *, rate: str = "pooled",
             metrics: Sequence[str] | None = None) -> list[Path]:
    """One figure per metric (per model where a task has several); the paths written."""
    written: list[Path] = []
    for key in metrics or METRICS:
        models = metric_models(points, METRICS[key])
        for model_key in models:
            stem = f"rd_{key}"
            if len(models) > 1:
                stem += "_" + _slug(model_key.split(":")[0].rsplit(".", 1)[0])
            written += plot_metric(points, key, out_dir, rate=rate, model_key=model_key,
                                   stem=stem)
    return written
