"""The HTML report: one static page a person reads in a browser, offline.

``bench report --html DIR`` writes ``DIR/index.html`` with its assets beside it:

* ``assets/vega.js``: Vega, Vega-Lite and Vega-Embed in one file, as bundled by the
  installed ``vl-convert-python`` for the Vega-Lite version of the installed ``altair``
  (no CDN, no server: the page opens from the file system on a laptop with no network);
* ``img/<image id>/``: the gallery's pictures (:mod:`bench.report.gallery`);
* ``data/points.csv`` and ``data/bd.csv``: the numbers behind the page.

The page has four parts. **BD-rate** against the anchor on every axis, with the † (a curve
is non-monotonic: its dominated points dropped) and ‡ (overlap below 75 %) flags, a value
with ‡ never set in bold; the table sorts by any column, and each axis has its full table
(both overlaps, BD-metric, notes) below it. **RD curves** for every metric with values, one
line per codec label in grid order, drawn by Vega-Lite from specs built with altair: hover
gives codec, quality, bpp and value; the points BD-rate leaves out as dominated are hollow;
the points shown in the gallery are ringed, and clicking a point takes the reader to its
pictures. **Gallery**: originals and each codec's reconstruction at the grid point nearest
each target rate, with the ROI outline and the detections switchable, and a lossless
enlarged crop on one object. **Provenance**: codec versions, task models and their sha256,
the commands that made the run and the report, the images.

Without an anchor (none named, none of the default ones in the run) or with a single codec
the page has no BD table and says why; everything else is there.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import math
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.report.bd import (
    INTERVAL_HEADER,
    LOW_OVERLAP,
    LOW_OVERLAP_MARK,
    QUALITY_OVERLAP_HEADER,
    RATE_OVERLAP_HEADER,
    bd_columns,
    bd_table,
    dominated,
)
from bench.report.check import describe_environment
from bench.report.points import (
    METRICS,
    Points,
    ceiling,
    curves,
    is_ceiling,
    metric_models,
    wide,
    wide_columns,
)
from bench.report.tables import Column, best_rows, cell

#: Axes of the page, in order: task scores first (the report is for machines' codecs).
AXES = ("det-ap", "seg-ap", "psnr", "roi-psnr", "bg-psnr", "ms-ssim", "det-ap50")
#: Shapes of the codecs' points (Vega-Lite names), in codec order, as in the PNG figures.
SHAPES = ("circle", "square", "diamond", "triangle-up", "triangle-down", "triangle-left",
          "triangle-right", "cross", "wedge", "arrow")
_GENERATOR = "bench report --html"
_RATE_TITLES = {"pooled": "rate (bpp, pooled)", "mean": "rate (bpp, mean over images)"}
_VALUE_FORMATS = {"dB": ".2f", "%": ".1f", "": ".4f"}


@dataclass
class HtmlReport:
    """What :func:`write_html` wrote: the page, every file, their total size, notes."""

    index: Path
    files: list[Path]
    notes: list[str] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        """Total size of the report's files."""
        return sum(p.stat().st_size for p in self.files)


def _esc(text) -> str:
    return html.escape(str(text), quote=True)


def vega_bundle() -> tuple[str, str]:
    """(JavaScript, Vega-Lite version): Vega, Vega-Lite and Vega-Embed in one classic script
    from the installed vl-convert, matching the installed altair's Vega-Lite version."""
    import altair as alt
    import vl_convert as vlc

    major_minor = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    have = vlc.get_vegalite_versions()
    version = major_minor if major_minor in have else have[-1]
    return vlc.javascript_bundle(vl_version=f"v{version}"), version


def axes_of(points: Points, metrics: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """[(metric key, model key)] of the page: those asked for (default :data:`AXES`,
    then any other metric), each with every model that scored it, where a codec's curve
    has a value (a ceiling alone makes no chart)."""
    keys = list(metrics) if metrics else list(AXES) + [k for k in METRICS if k not in AXES]
    out = []
    for key in keys:
        for model_key in metric_models(points, METRICS[key]):
            cv = curves(points, METRICS[key], "pooled", model_key)
            if any(math.isfinite(v) for _, _, ys in cv.values() for v in ys):
                out.append((key, model_key))
    return out


def _axis_title(points: Points, key: str, model_key: str, several: bool) -> str:
    metric = METRICS[key]
    title = metric.label
    if model_key and several:
        title += " · " + points.frame.loc[points.frame["model_key"] == model_key,
                                         "model"].iloc[0]
    return title


# ------------------------------------------------------------------ RD charts
def rd_chart(points: Points, key: str, model_key: str, *, rate: str = "pooled",
             title: str = "", gallery: set[tuple[str, str]] | None = None,
             policy: str = "pareto") -> dict:
    """The Vega-Lite spec (a dict) of one RD chart, built with altair.

    One line per codec label in grid order, points coloured and shaped per codec (the
    colours of the PNG figures), dominated points hollow, gallery points ringed, the
    uncompressed ceiling as a dashed rule; the legend highlights a codec on click and the
    scales zoom and pan (double-click resets).
    """
    import altair as alt

    from bench.report.plots import codec_colours

    metric = METRICS[key]
    gallery = gallery or set()
    labels = [c for c in points.codecs() if not is_ceiling(c)]
    colours = codec_colours(points.codecs())
    dropped = ("dominated: left out of BD-rate" if policy == "pareto" else
               "dominated: the curve gets no BD value (--non-monotonic nan)")
    rows = []
    for codec, (qs, xs, ys) in curves(points, metric, rate, model_key).items():
        drop = dominated(xs, ys)
        for i, (q, x, y) in enumerate(zip(qs, xs, ys, strict=True)):
            if not (math.isfinite(x) and x > 0 and math.isfinite(y)):
                continue
            rows.append({"codec": codec, "quality": q, "bpp": x, "value": y, "order": i,
                         "dominated": bool(drop[i]), "gallery": (codec, q) in gallery,
                         "status": (dropped if drop[i] else "on the curve")})
    fmt = _VALUE_FORMATS.get(metric.unit, ".3f")
    data = alt.Data(values=rows)
    sel = alt.selection_point(fields=["codec"], bind="legend", name="pick")
    domain = [c for c in labels if any(r["codec"] == c for r in rows)]
    colour = alt.Color("codec:N", scale=alt.Scale(domain=domain,
                                                  range=[colours[c] for c in domain]),
                       legend=alt.Legend(title="codec (click)", symbolStrokeWidth=1.5))
    shape = alt.Shape("codec:N", scale=alt.Scale(
        domain=domain, range=[SHAPES[labels.index(c) % len(SHAPES)] for c in domain]),
        legend=alt.Legend(title="codec (click)"))
    x = alt.X("bpp:Q", scale=alt.Scale(type="log", nice=False, padding=14),
              title=_RATE_TITLES[rate],
              axis=alt.Axis(format="~g", grid=True))
    y = alt.Y("value:Q", scale=alt.Scale(zero=False, padding=10), title=metric.axis_label)
    tip = [alt.Tooltip("codec:N"), alt.Tooltip("quality:N"),
           alt.Tooltip("bpp:Q", format=".4f", title="bpp"),
           alt.Tooltip("value:Q", format=fmt, title=metric.axis_label),
           alt.Tooltip("status:N")]
    fade = alt.condition(sel, alt.value(1.0), alt.value(0.12))
    base = alt.Chart(data)
    zoom = alt.selection_interval(bind="scales", name="zoom")
    layers = [
        base.mark_line(strokeWidth=1.6).encode(x=x, y=y, color=colour, detail="codec:N",
                                               order="order:Q", opacity=fade),
        base.transform_filter("!datum.dominated").mark_point(
            filled=True, size=46).encode(x=x, y=y, color=colour, shape=shape, tooltip=tip,
                                         opacity=fade).add_params(sel, zoom),
        base.transform_filter("datum.dominated").mark_point(
            filled=False, size=64, strokeWidth=1.6).encode(x=x, y=y, color=colour,
                                                           shape=shape, tooltip=tip,
                                                           opacity=fade),
        base.transform_filter("datum.gallery").mark_point(
            filled=False, size=230, color="#111", strokeWidth=1.1, shape="circle").encode(
            x=x, y=y, tooltip=tip, opacity=fade),
    ]
    ceil = ceiling(points, metric, model_key)
    if metric.task is not None and ceil:
        crow = [{"codec": c, "value": v, "label": f"{c} (uncompressed): {v:{fmt}}"}
                for c, v in ceil.items() if math.isfinite(v)]
        if crow:
            layers.append(alt.Chart(alt.Data(values=crow)).mark_rule(
                strokeDash=[6, 4], color="#555", strokeWidth=1.2).encode(
                y="value:Q", tooltip=[alt.Tooltip("label:N", title="ceiling")]))
    chart = alt.layer(*layers).properties(width=430, height=280, title=title or metric.label)
    return chart.to_dict()


# ------------------------------------------------------------------ tables
def html_table(frame, columns: Sequence[Column], *, skip: Sequence[bool] | None = None,
               table_id: str = "", caption: str = "", titles: Sequence[str] | None = None,
               pin: Sequence[bool] | None = None) -> str:
    """A sortable HTML table: cells formatted as in the text tables (:func:`cell`), the
    best values in bold, numbers sorted by value (``data-v``; a column with ``sort_by`` by
    that column's number), pinned rows kept last."""
    best = [best_rows(frame, c, skip) for c in columns]
    head = "".join(f'<th scope="col">{_esc(c.header)}</th>' for c in columns)
    body = []
    for i, row in enumerate(frame.to_dict("records")):
        cells = []
        for j, c in enumerate(columns):
            v = row[c.key]
            text = cell(v, c.fmt)
            if c.suffix and row.get(c.suffix):
                text += f" {row[c.suffix]}"
            attrs = ""
            order = row.get(c.sort_by) if c.sort_by else v
            if isinstance(order, int | float) and not isinstance(order, bool):
                attrs = f' data-v="{order if math.isfinite(float(order)) else ""}"'
            inner = f"<b>{_esc(text)}</b>" if i in best[j] else _esc(text)
            cells.append(f"<td{attrs}>{inner}</td>")
        attrs = ' data-pin="1"' if pin and pin[i] else ""
        if titles and titles[i]:
            attrs += f' title="{_esc(titles[i])}"'
        body.append(f"<tr{attrs}>{''.join(cells)}</tr>")
    cap = f"<caption>{_esc(caption)}</caption>" if caption else ""
    tid = f' id="{_esc(table_id)}"' if table_id else ""
    return (f'<div class="scroll"><table class="sortable"{tid}>{cap}<thead><tr>{head}</tr>'
            f"</thead><tbody>{''.join(body)}</tbody></table></div>")


def bd_section(points: Points, axes: list[tuple[str, str]], anchor: str | None, *,
               method: str, rate: str, policy: str, why_none: str = "",
               intervals=None) -> tuple[str, object]:
    """The BD part of the page (summary table and one full table per axis) and the BD
    values as one DataFrame (None without an anchor). ``intervals``
    (:class:`bench.report.bootstrap.Intervals`) puts a bootstrap interval beside the BD
    values of the axes it covers."""
    import pandas as pd

    from bench.report.bootstrap import INTERVAL_TEXT, add_intervals, without_interval_text

    if anchor is None:
        return f'<p class="none">No BD table: {_esc(why_none)}</p>', None
    frames = []
    several = {k: len(metric_models(points, METRICS[k])) > 1 for k, _ in axes}
    for key, model_key in axes:
        try:
            f = bd_table(points, key, anchor, method=method, rate=rate, policy=policy,
                         model_key=model_key)
        except ValueError as exc:  # the anchor has no value on this axis
            f = None
            note = str(exc)
        if f is not None:
            f["axis"] = _axis_title(points, key, model_key, several[key])
            found = intervals.by_axis.get((key, model_key)) if intervals else None
            if found is not None:
                f = add_intervals(f, found, intervals.replicates, intervals.seed)
            frames.append((key, model_key, f))
        else:
            frames.append((key, model_key, note))
    ok = [f for _, _, f in frames if not isinstance(f, str)]
    if not ok:
        return '<p class="none">No BD table: the anchor has no values.</p>', None
    table = pd.concat(ok, ignore_index=True)
    # summary: one row per codec, one BD-rate column per axis
    codecs = list(dict.fromkeys(table["codec"]))
    summary = {c: {"codec": c} for c in codecs}
    cols = [Column("codec", "codec"), Column("points", "points", "{:d}")]
    titles = {c: [] for c in codecs}
    for n, (_, _, f) in enumerate(frames):
        if isinstance(f, str):
            continue
        col = f"bd{n}"
        for rec in f.to_dict("records"):
            s = summary[rec["codec"]]
            s["points"] = int(rec["points"])
            s[col] = rec["bd_rate"]
            flags = ("†" if rec["monotonic"] not in ("yes", "") else "") + rec["rate_flag"]
            s[col + "_flag"] = flags
            s[col + "_low"] = rec["rate_flag"]
            if rec["note"]:
                titles[rec["codec"]].append(f"{rec['axis']}: {rec['note']}")
            if "bd_rate_ci" in rec:
                s[col + "_ci"] = rec["bd_rate_ci"]
                s[col + "_median"] = rec["bd_rate_median"]
        cols.append(Column(col, f"BD-rate {f['axis'].iloc[0]} (%)", "{:+.2f}", "min",
                           suffix=col + "_flag", unranked=col + "_low"))
        if "bd_rate_ci" in f:
            cols.append(Column(col + "_ci", INTERVAL_HEADER, sort_by=col + "_median"))
    f = points.frame
    for c in codecs:
        sel = f[f["codec"] == c]
        summary[c]["bpp_min"] = float(sel[f"bpp_{rate}"].min())
        summary[c]["bpp_max"] = float(sel[f"bpp_{rate}"].max())
        det = sel.loc[sel["task"] == "detection", "ap"]
        summary[c]["det_ap_max"] = float(det.max()) if len(det) else math.nan
    frame = pd.DataFrame([summary[c] for c in codecs])
    first = cols[2].key if len(cols) > 2 else None
    if first:
        frame["_k"] = [math.inf if not math.isfinite(v) else v for v in
                       frame[first].fillna(math.inf)]
        frame["_c"] = [is_ceiling(c) for c in frame["codec"]]
        frame = frame.sort_values(["_c", "_k"], kind="stable").reset_index(drop=True)
    if frame["det_ap_max"].notna().any():
        cols.append(Column("det_ap_max", "best det AP", "{:.1f}", "max"))
    cols += [Column("bpp_min", "bpp min", "{:.3f}"), Column("bpp_max", "bpp max", "{:.3f}")]
    skip = [is_ceiling(c) for c in frame["codec"]]
    parts = [html_table(frame, cols, skip=skip, table_id="bd-summary", pin=skip,
                        titles=["; ".join(titles[c]) for c in frame["codec"]],
                        caption=f"BD-rate against {anchor} ({method}, {rate} bpp, "
                                f"{len(points.image_ids)} images); negative is better. "
                                + (intervals.caption() + ". " if intervals and
                                   intervals.by_axis else "") + "Click a header to sort.")]
    parts.append(f'<p class="legend">† a curve is non-monotonic (its dominated points are '
                 f"dropped, drawn hollow in the charts); {LOW_OVERLAP_MARK} the curves "
                 f"overlap on less than {LOW_OVERLAP:.0f} % of their quality range (never set "
                 "in bold); — no value (hover the row for the reason). "
                 f"{_esc(QUALITY_OVERLAP_HEADER)}: the share of the two curves' quality "
                 "range both reach, over which BD-rate is taken; "
                 f"{_esc(RATE_OVERLAP_HEADER)}: the same on the log-rate axis, for "
                 "BD-metric.</p>")
    for key, model_key, f in frames:
        label = _axis_title(points, key, model_key, several[key])
        if isinstance(f, str):
            parts.append(f"<details><summary>{_esc(label)}</summary><p>{_esc(f)}</p>"
                         "</details>")
            continue
        cs = bd_columns(key, intervals=INTERVAL_TEXT[0] in f)
        sk = [is_ceiling(c) for c in f["codec"]]
        parts.append(f"<details><summary>{_esc(label)}: BD-rate, BD-metric, overlaps, "
                     f"notes</summary>{html_table(f, cs, skip=sk, pin=sk)}</details>")
    return "\n".join(parts), without_interval_text(table)


# ------------------------------------------------------------------ gallery
def _svg_overlay(item, view_box: str, dets, crop: bool) -> str:
    parts = [f'<svg viewBox="{view_box}" preserveAspectRatio="none" aria-hidden="true">',
             f'<image class="roi" href="{_esc(item.outline)}" x="0" y="0" '
             f'width="{item.width}" height="{item.height}"/>']
    if dets:
        size = max(11.0, item.width / 48)
        g = ['<g class="dets">']
        for d in dets:
            g.append(f'<rect x="{d.x:.1f}" y="{d.y:.1f}" width="{d.w:.1f}" '
                     f'height="{d.h:.1f}"/>')
            if not crop:
                ty = d.y - 3 if d.y > size + 2 else d.y + size
                g.append(f'<text x="{d.x + 2:.1f}" y="{ty:.1f}" font-size="{size:.0f}">'
                         f"{_esc(d.name)} {d.score:.2f}</text>")
        g.append("</g>")
        parts += g
    parts.append("</svg>")
    return "".join(parts)


def _tile_html(item, tile, colour: str, original: bool = False) -> str:
    x, y, s = item.crop
    if not tile.view:
        body = f'<div class="missing">{_esc(tile.note or "no picture")}</div>'
    else:
        full = _svg_overlay(item, f"0 0 {item.width} {item.height}", tile.detections, False)
        crop = _svg_overlay(item, f"{x} {y} {s} {s}", tile.detections, True)
        alt_text = f"{tile.label} {tile.quality} reconstruction of image {item.image_id}"
        body = (f'<div class="view" style="aspect-ratio:{item.width}/{item.height}">'
                f'<img src="{_esc(tile.view)}" alt="{_esc(alt_text)}" width="{item.width}" '
                f'height="{item.height}">{full}</div>'
                f'<div class="view crop"><img src="{_esc(tile.crop)}" alt="crop of '
                f'{_esc(alt_text)}" width="{s}" height="{s}">{crop}</div>')
    facts = []
    if original:
        head = "original"
        if math.isfinite(tile.bpp):
            facts.append(f"source file {tile.bpp:.3f} bpp")
    else:
        head = f"{tile.label} · {tile.quality}"
        if math.isfinite(tile.bpp):
            run = (f" (point {tile.bpp_run:.3f})" if math.isfinite(tile.bpp_run) else "")
            facts.append(f"{tile.bpp:.3f} bpp{run}")
        for name, v in (("PSNR", tile.psnr), ("ROI", tile.roi_psnr), ("BG", tile.bg_psnr)):
            if v is not None and math.isfinite(v):
                facts.append(f"{name} {v:.2f} dB")
    if tile.detections is not None:
        facts.append(f"{len(tile.detections)} detection(s)")
    return (f'<figure class="tile" data-label="{_esc(tile.label)}" '
            f'data-quality="{_esc(tile.quality)}">{body}<figcaption>'
            f'<span class="swatch" style="background:{colour}"></span><b>{_esc(head)}</b>'
            f"<br>{_esc(' · '.join(facts))}</figcaption></figure>")


def gallery_section(gallery, colours: dict[str, str]) -> str:
    """The gallery part of the page: controls, then per target rate and image the tiles."""
    targets = gallery.targets
    radios = "".join(
        f'<label><input type="radio" name="target" value="{t:g}"{" checked" if i == 0 else ""}>'
        f" ≈ {t:g} bpp</label>" for i, t in enumerate(targets))
    from bench.report.gallery import SCORE_THRESHOLD

    dets = (f'<label><input type="checkbox" id="show-dets" checked> detections '
            f"(score ≥ {SCORE_THRESHOLD:g}, {_esc(gallery.detections_from)})</label>"
            if gallery.detections_from else "")
    controls = (f'<div class="controls">{radios if len(targets) > 1 else ""}'
                '<label><input type="checkbox" id="show-roi" checked> ROI outline</label>'
                f'{dets}<label><input type="checkbox" id="show-crops" checked> zoomed crops'
                '</label><label>tile width <input type="range" id="tile-size" min="200" '
                'max="640" step="20" value="300"></label></div>'
                '<p id="gallery-status" role="status"></p>')
    sets = []
    for i, t in enumerate(targets):
        chosen = ", ".join(f"{c} {q}" for c, q in gallery.chosen[t].items())
        items = []
        for item in gallery.images:
            tiles = [_tile_html(item, item.original, "#000", original=True)]
            tiles += [_tile_html(item, tile, colours.get(tile.label, "#888"))
                      for tile in item.tiles[t]]
            items.append(
                f'<article class="gimg" id="img-{item.image_id}-{i}"><h3>image '
                f"{item.image_id} <small>{_esc(item.file_name)} · {item.width}×{item.height} "
                f"· {item.objects} object(s) · ROI {100 * item.coverage:.1f} % of the pixels"
                f'</small></h3><div class="tiles">{"".join(tiles)}</div></article>')
        sets.append(f'<div class="gset" data-target="{t:g}"{" hidden" if i else ""}>'
                    f'<p class="chosen">Each codec at its grid point nearest {t:g} bpp '
                    f"(pooled over the run): {_esc(chosen)}. Crops are lossless, enlarged "
                    f"without smoothing.</p>{''.join(items)}</div>")
    return controls + "".join(sets)


# ------------------------------------------------------------------ provenance
def provenance_section(points: Points, store, *, command: str, run_dir, dataset_note: str,
                       vl_version: str) -> str:
    """Codec versions, task models, commands, images and software of the report."""
    import altair as alt

    from bench import __version__

    rows = []
    for label, version in points.versions.items():
        cmd = store.db.execute(
            "SELECT command FROM results WHERE COALESCE(label, codec)=? AND codec_version=? "
            "AND command IS NOT NULL LIMIT 1", (label, version)).fetchone()
        sample = (f"<details><summary>encoder command (one image)</summary><code>"
                  f"{_esc(cmd[0])}</code></details>") if cmd else ""
        rows.append(f"<tr><td>{_esc(label)}</td><td><code>{_esc(version)}</code>{sample}"
                    "</td></tr>")
    models = []
    for task in ("detection", "segmentation"):
        for key in points.models(task):
            info = store.model_info(key) or {}
            settings = json.dumps(info.get("settings", {}), sort_keys=True)
            models.append(f"<tr><td>{task}</td><td>{_esc(info.get('model', key))}</td><td>"
                          f"<code>{_esc(info.get('sha256', ''))}</code></td><td><code>"
                          f"{_esc(settings)}</code></td></tr>")
    recorded = store.command_records() if hasattr(store, "command_records") else []
    runs = ("".join(f"<pre><code>{_esc(c)}</code></pre>"
                    + ("".join(f"<p>ran on: {_esc(describe_environment(m))}</p>"
                               for m in ran_on) if ran_on else
                       "<p>ran on: not recorded (run before <code>bench run</code> kept the "
                       "machine)</p>")
                    for c, ran_on in recorded) if recorded else
            "<p>Not recorded in this store (it was made before <code>bench run</code> kept "
            "its command lines).</p>")
    ids = ", ".join(map(str, points.image_ids))
    notes = "".join(f"<li>{_esc(n)}</li>" for n in points.notes)
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<h3>Codec versions</h3><table><thead><tr><th>codec</th><th>version</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
        + ("<h3>Task models</h3><table><thead><tr><th>task</th><th>model</th><th>sha256</th>"
           f"<th>settings</th></tr></thead><tbody>{''.join(models)}</tbody></table>"
           if models else "")
        + f"<h3>Commands</h3><p>The run (<code>{_esc(run_dir)}</code>):</p>{runs}"
        f"<p>This report:</p><pre><code>{_esc(command)}</code></pre>"
        f"<h3>Images</h3><p>{len(points.image_ids)} images, every codec and quality over the "
        f"same ones. {_esc(dataset_note)}</p><details><summary>image ids</summary><p>"
        f"{_esc(ids)}</p></details>"
        + (f"<h3>Notes</h3><ul>{notes}</ul>" if notes else "")
        + f"<h3>Software</h3><p>bench {_esc(__version__)}, Python "
        f"{sys.version.split()[0]}, altair {_esc(alt.__version__)}, Vega-Lite "
        f"{_esc(vl_version)}; made {now}.</p>")


# ------------------------------------------------------------------ the page
def write_html(points: Points, out_dir: str | Path, *, store, run_dir: str | Path,
               anchor: str | None, why_no_anchor: str = "", metrics: Sequence[str] | None = None,
               method: str = "pchip", rate: str = "pooled", policy: str = "pareto",
               intervals=None, dataset=None, dataset_error: str = "", images=None,
               targets: Sequence[float] | None = None, command: str = "") -> HtmlReport:
    """Write the report into ``out_dir`` (see the module docstring); returns what it wrote.

    ``dataset`` (a :class:`bench.data.coco.CocoDataset` of the run's split) gives the
    gallery its originals and ROI; without it (``dataset_error`` says why) the page has no
    gallery. ``images`` and ``targets`` are those of :func:`bench.report.gallery.build_gallery`.
    ``intervals`` are the bootstrap's (:class:`bench.report.bootstrap.Intervals`), shown
    beside the BD values of the axes they cover.
    """
    from bench.report import gallery as gal
    from bench.report.plots import codec_colours

    out = Path(out_dir)
    old = out / "index.html"
    if old.is_file() and _GENERATOR in old.read_text(errors="replace")[:2000]:
        for sub in ("img", "assets", "data"):  # a previous report of ours: no stale files
            shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    colours = codec_colours(points.codecs())

    gallery = None
    if dataset is None:
        gallery_html = f'<p class="none">No gallery: {_esc(dataset_error)}</p>'
    else:
        try:
            gallery = gal.build_gallery(
                points, store, run_dir, dataset, out,
                images=gal.DEFAULT_IMAGES if images is None else images,
                targets=targets or gal.DEFAULT_TARGETS, rate=rate)
        except gal.GalleryError as exc:
            gallery_html = f'<p class="none">No gallery: {_esc(exc)}</p>'
            notes.append(f"no gallery: {exc}")
        else:
            gallery_html = (gallery_section(gallery, colours) if gallery.images else
                            '<p class="none">No gallery: no image chosen.</p>')
    shown = ({(c, q) for t in gallery.chosen.values() for c, q in t.items()}
             if gallery and gallery.images else set())

    axes = axes_of(points, metrics)
    several = {k: len(metric_models(points, METRICS[k])) > 1 for k, _ in axes}
    specs = []
    for n, (key, model_key) in enumerate(axes):
        title = _axis_title(points, key, model_key, several[key])
        specs.append({"id": f"chart-{n}", "key": key, "title": title,
                      "spec": rd_chart(points, key, model_key, rate=rate, title=title,
                                       gallery=shown, policy=policy)})
    bd_html, bd_frame = bd_section(points, axes, anchor, method=method, rate=rate,
                                   policy=policy, why_none=why_no_anchor,
                                   intervals=intervals)

    frame, task_cols = wide(points)
    points_html = html_table(frame, wide_columns(task_cols),
                             skip=[is_ceiling(c) for c in frame["codec"]], table_id="points")

    bundle, vl_version = vega_bundle()
    (out / "assets").mkdir(exist_ok=True)
    (out / "assets" / "vega.js").write_text(bundle)
    (out / "data").mkdir(exist_ok=True)
    points.frame.to_csv(out / "data" / "points.csv", index=False)
    if bd_frame is not None:
        bd_frame.to_csv(out / "data" / "bd.csv", index=False)

    dataset_note = (f"Data: {dataset.annotation_file.parent.parent} ({dataset.split})."
                    if dataset is not None else "")
    prov = provenance_section(points, store, command=command, run_dir=run_dir,
                              dataset_note=dataset_note, vl_version=vl_version)
    charts = "".join(
        f'<figure class="chart"><div id="{s["id"]}" class="vega" data-metric="{s["key"]}">'
        f"</div></figure>" for s in specs)
    codecs = [c for c in points.codecs() if not is_ceiling(c)]
    anchor_text = f"anchor {anchor}" if anchor else "no anchor"
    summary = (f"{len(points.image_ids)} images · {len(codecs)} codec(s): "
               f"{', '.join(codecs)} · {anchor_text} · {method}, {rate} bpp")
    targets_text = ", ".join(f"{t:g}" for t in (gallery.targets if gallery else []))
    page = _PAGE.format(
        generator=_GENERATOR, title=_esc(f"bench report · {Path(run_dir).name}"),
        summary=_esc(summary), css=_CSS, bd=bd_html, charts=charts,
        gallery=gallery_html, points=points_html, provenance=prov,
        specs=json.dumps(specs).replace("</", "<\\/"), js=_JS,
        targets=_esc(targets_text))
    old.write_text(page)
    files = [p for p in out.rglob("*") if p.is_file()]
    return HtmlReport(old, files, notes)


_CSS = """
:root{--tile:300px;--fg:#1b1f24;--muted:#5b6570;--line:#d9dee3;--bg:#fff;--accent:#0b6bcb}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
color:var(--fg);background:var(--bg)}
header{padding:14px 24px 8px;border-bottom:1px solid var(--line)}
header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:var(--muted)}
nav{position:sticky;top:0;z-index:5;background:#f6f8fa;border-bottom:1px solid var(--line);
padding:6px 24px}
nav a{margin-right:18px;color:var(--accent);text-decoration:none;font-weight:600}
main{padding:0 24px 40px}
section{margin-top:22px}
h2{font-size:17px;margin:0 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
h3{font-size:15px;margin:16px 0 6px}
h3 small{font-weight:400;color:var(--muted)}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;margin:6px 0}
caption{caption-side:top;text-align:left;color:var(--muted);padding-bottom:4px}
th,td{border-bottom:1px solid var(--line);padding:3px 9px;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
table.sortable th{cursor:pointer;user-select:none;background:#f6f8fa;white-space:normal;
max-width:9em;vertical-align:bottom}
.scroll{max-width:100%;overflow-x:auto}
table.sortable th[aria-sort=ascending]::after{content:" ▲";font-size:10px}
table.sortable th[aria-sort=descending]::after{content:" ▼";font-size:10px}
tr[data-pin] td{color:var(--muted)}
td code,pre code{font-size:12px;white-space:pre-wrap;word-break:break-all}
details{margin:4px 0}
summary{cursor:pointer;color:var(--accent)}
.legend,.chosen,.none{color:var(--muted);max-width:1100px}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:14px}
.chart{margin:0;border:1px solid var(--line);border-radius:6px;padding:6px;overflow:hidden}
.controls{display:flex;flex-wrap:wrap;gap:16px;align-items:center;padding:6px 0}
#gallery-status{color:#8a4b00;min-height:1em;margin:2px 0}
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(var(--tile),1fr));gap:10px}
.tile{margin:0;border:1px solid var(--line);border-radius:6px;padding:5px;background:#fafbfc}
.tile.flash{outline:3px solid #ff9f0a;outline-offset:1px}
.view{position:relative;width:100%}
.view img{display:block;width:100%;height:auto}
.view svg{position:absolute;inset:0;width:100%;height:100%;overflow:hidden}
.view.crop{margin-top:5px;aspect-ratio:1/1}
.view.crop img{image-rendering:pixelated;height:100%}
.view.crop image.roi{image-rendering:pixelated}
.dets rect{fill:none;stroke:#ff2d55;stroke-width:2px;vector-effect:non-scaling-stroke}
.dets text{fill:#fff;stroke:#000;stroke-width:3px;paint-order:stroke;
font-family:"DejaVu Sans",sans-serif}
body.hide-roi image.roi,body.hide-dets .dets,body.hide-crops .view.crop{display:none}
figcaption{font-size:12px;color:var(--muted);margin-top:4px}
figcaption b{color:var(--fg)}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px}
.missing{padding:40px 10px;text-align:center;color:#8a4b00;background:#fff7e6}
"""

_JS = r"""
(function () {
  "use strict";
  const state = window.benchReport = {ready: false, charts: 0, errors: []};
  function fail(what, err) {
    state.errors.push(what + ": " + err);
    console.error("bench report: " + what + ": " + err);
  }
  // sortable tables: numbers by data-v, text otherwise; empty cells and pinned rows last
  function sortBy(table, col, th) {
    const dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
    for (const h of table.tHead.rows[0].cells) h.removeAttribute("aria-sort");
    th.setAttribute("aria-sort", dir);
    const body = table.tBodies[0];
    const rows = Array.from(body.rows);
    const pinned = rows.filter(r => r.dataset.pin);
    const free = rows.filter(r => !r.dataset.pin);
    const key = r => {
      const c = r.cells[col];
      if (c.dataset.v === undefined) return c.textContent.trim();
      return c.dataset.v === "" ? null : Number(c.dataset.v);
    };
    free.sort((a, b) => {
      const x = key(a), y = key(b);
      if (x === null || x === "—") return 1;
      if (y === null || y === "—") return -1;
      const r = (typeof x === "number" && typeof y === "number") ? x - y
        : String(x).localeCompare(String(y), undefined, {numeric: true});
      return dir === "ascending" ? r : -r;
    });
    for (const r of free.concat(pinned)) body.appendChild(r);
  }
  for (const table of document.querySelectorAll("table.sortable")) {
    Array.from(table.tHead.rows[0].cells).forEach((th, col) => {
      th.tabIndex = 0;
      th.addEventListener("click", () => sortBy(table, col, th));
      th.addEventListener("keydown", e => { if (e.key === "Enter") sortBy(table, col, th); });
    });
  }
  // gallery controls
  function toggle(id, cls) {
    const box = document.getElementById(id);
    if (!box) return;
    const apply = () => document.body.classList.toggle(cls, !box.checked);
    box.addEventListener("change", apply);
    apply();
  }
  toggle("show-roi", "hide-roi");
  toggle("show-dets", "hide-dets");
  toggle("show-crops", "hide-crops");
  const size = document.getElementById("tile-size");
  if (size) size.addEventListener("input", () =>
    document.documentElement.style.setProperty("--tile", size.value + "px"));
  function showTarget(value) {
    for (const set of document.querySelectorAll(".gset")) set.hidden = set.dataset.target !== value;
    for (const r of document.querySelectorAll("input[name=target]")) r.checked = r.value === value;
  }
  for (const r of document.querySelectorAll("input[name=target]"))
    r.addEventListener("change", () => showTarget(r.value));
  // from a point on a curve to its pictures
  const status = document.getElementById("gallery-status");
  function toPictures(event, item) {
    const d = item && item.datum;
    if (!d || d.codec === undefined || d.quality === undefined) return;
    const sel = '.tile[data-label="' + CSS.escape(d.codec) + '"][data-quality="' +
      CSS.escape(d.quality) + '"]';
    const tiles = document.querySelectorAll(sel);
    if (!status) return;
    if (!tiles.length) {
      status.textContent = d.codec + " " + d.quality + " (" + d.bpp.toFixed(3) +
        " bpp) is not in the gallery, which shows each codec's point nearest " +
        document.body.dataset.targets + " bpp; rebuild with --html-bpp " + d.bpp.toFixed(3) +
        " to see it.";
      status.scrollIntoView({block: "center"});
      return;
    }
    status.textContent = d.codec + " " + d.quality + ": " + tiles.length + " picture(s), outlined.";
    showTarget(tiles[0].closest(".gset").dataset.target);
    for (const t of document.querySelectorAll(".tile.flash")) t.classList.remove("flash");
    for (const t of tiles) t.classList.add("flash");
    tiles[0].scrollIntoView({block: "center"});
  }
  // charts
  let specs = [];
  try {
    specs = JSON.parse(document.getElementById("chart-specs").textContent);
  } catch (err) { fail("chart specs", err); }
  if (typeof vegaEmbed !== "function") {  // done, with the error for the reader and tests
    fail("vega", "assets/vega.js did not load");
    state.ready = true;
    return;
  }
  const opts = {renderer: "svg", actions: {export: true, source: false, compiled: false,
                editor: false}};
  Promise.all(specs.map(s => vegaEmbed("#" + s.id, s.spec, opts).then(res => {
    res.view.addEventListener("click", toPictures);
    state.charts += 1;
  }).catch(err => fail("chart " + s.title, err)))).then(() => {
    state.ready = true;
    document.body.dataset.ready = "1";
  });
})();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="generator" content="{generator}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
</head>
<body data-targets="{targets}">
<header><h1>{title}</h1><p>{summary}</p></header>
<nav><a href="#bd">BD-rate</a><a href="#curves">RD curves</a><a href="#gallery">Gallery</a>
<a href="#points">Points</a><a href="#provenance">Provenance</a>
<a href="data/points.csv">points.csv</a></nav>
<main>
<section id="bd"><h2>BD-rate</h2>
{bd}
</section>
<section id="curves"><h2>Rate–quality curves</h2>
<p class="legend">Hover a point for its codec, quality, bpp and value; click it to see its
pictures in the gallery (ringed points are shown there). Hollow points are dominated: BD-rate
leaves them out. Click a codec in a legend to highlight it; drag to pan, scroll to zoom,
double-click to reset. Each chart's menu exports SVG or PNG.</p>
<div class="charts">{charts}</div>
</section>
<section id="gallery"><h2>Gallery</h2>
{gallery}
</section>
<section id="points"><h2>Points</h2>
<details><summary>every (codec, quality): rate, image metrics, task scores</summary>
{points}
</details>
</section>
<section id="provenance"><h2>Provenance</h2>
{provenance}
</section>
</main>
<script type="application/json" id="chart-specs">{specs}</script>
<script src="assets/vega.js"></script>
<script>{js}</script>
</body>
</html>
"""
