"""The leaderboard: every codec's BD-rate against the anchor on each axis, with provenance.

Made from the standard run (the shared COCO val2017 images, every available codec at its
whole grid, detection and segmentation) by the commands of :data:`COMMANDS` (add
``--codec vtm`` where VTM is installed, and any ROI codec to be ranked; the learned codecs
also run with ``--roi none``, so their uniform mode is ranked beside their ROI mode, and the
classical codecs vvc, hevc and jpeg also with their ROI variants, ``--roi-method blur`` and
for hevc ``--roi-method qp``, beside their uniform rows). Writes
``leaderboard.csv`` (full precision, overlaps and monotonicity per axis, codec versions and
model hashes in every row) and ``leaderboard.md`` (the table the README shows). Codecs are
ranked by BD-rate on the first task axis present (detection AP, else mask AP, else PSNR);
a codec without a value there ranks last. The ceiling (``original``) is listed unranked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from bench.report.bd import LOW_OVERLAP, bd_table, overlap_flag
from bench.report.check import describe_environment
from bench.report.points import (
    METRICS,
    RATES,
    Points,
    is_ceiling,
    metric_models,
    points_csv,
)
from bench.report.tables import Column, to_csv, to_markdown

#: The standard run and the report that turns it into the committed leaderboard.
COMMANDS = (
    "bench run --codec jpeg --codec webp --codec jpeg2000 --codec jpegxl --codec hevc "
    "--codec vvc --codec av1 --codec ggm --codec gaussian-roi --codec original "
    "--task detection --task segmentation "
    "--model detection=../shared/models/yolov8n_integer_quant.tflite "
    "--model segmentation=../shared/models/yolo11n-seg_full_integer_quant.tflite "
    "--data-root ../shared/data/coco --run-dir runs/leaderboard --jobs 2",
    "bench run --codec ggm --codec gaussian-roi --roi none "
    "--task detection --task segmentation "
    "--model detection=../shared/models/yolov8n_integer_quant.tflite "
    "--model segmentation=../shared/models/yolo11n-seg_full_integer_quant.tflite "
    "--data-root ../shared/data/coco --run-dir runs/leaderboard --jobs 2",
    "bench run --codec vvc --codec hevc --codec jpeg --roi-method blur "
    "--task detection --task segmentation "
    "--model detection=../shared/models/yolov8n_integer_quant.tflite "
    "--model segmentation=../shared/models/yolo11n-seg_full_integer_quant.tflite "
    "--data-root ../shared/data/coco --run-dir runs/leaderboard --jobs 2",
    "bench run --codec hevc --roi-method qp "
    "--task detection --task segmentation "
    "--model detection=../shared/models/yolov8n_integer_quant.tflite "
    "--model segmentation=../shared/models/yolo11n-seg_full_integer_quant.tflite "
    "--data-root ../shared/data/coco --run-dir runs/leaderboard --jobs 2",
    "bench report --run-dir runs/leaderboard --leaderboard results/",
)
#: The points file written beside the leaderboard (``bench report --with-points`` reads it).
POINTS_FILE = "leaderboard_points.csv"
#: Axes of the leaderboard, in column order.
AXES = ("det-ap", "seg-ap", "psnr", "roi-psnr", "ms-ssim")


def _slug(key: str) -> str:
    return key.replace("-", "_")


def leaderboard_frame(points: Points, *, anchor: str, method: str = "pchip",
                      rate: str = "pooled", policy: str = "pareto", intervals=None):
    """One row per codec label: BD-rate, overlap and monotonicity per axis, provenance, rank.

    ``intervals`` (:class:`bench.report.bootstrap.Intervals`) adds each BD-rate's bootstrap
    interval (``bd_rate_AXIS_low`` / ``_high``) on the axes it covers."""
    import pandas as pd

    axes = [a for a in AXES if metric_models(points, METRICS[a])]
    rows: dict[str, dict] = {}
    models = {}
    for axis in axes:
        model_key = metric_models(points, METRICS[axis])[0]
        if model_key:
            info = points.models(METRICS[axis].task)[model_key]
            models[METRICS[axis].task] = info
        frame = bd_table(points, axis, anchor, method=method, rate=rate, policy=policy,
                         model_key=model_key)
        found = intervals.by_axis.get((axis, model_key)) if intervals else None
        for rec in frame.to_dict("records"):
            row = rows.setdefault(rec["codec"], {"codec": rec["codec"]})
            s = _slug(axis)
            row[f"bd_rate_{s}"] = rec["bd_rate"]
            if found is not None:
                pair = found.get(rec["codec"])
                row[f"bd_rate_{s}_low"] = pair[0].low if pair else math.nan
                row[f"bd_rate_{s}_high"] = pair[0].high if pair else math.nan
            row[f"overlap_{s}"] = rec["rate_overlap"]
            row[f"monotonic_{s}"] = rec["monotonic"]
            row[f"flag_{s}"] = _flag(rec)
            row[f"note_{s}"] = rec["note"]
    f = points.frame
    for codec, row in rows.items():
        sel = f[f["codec"] == codec]
        row["points"] = int(sel["quality"].nunique())
        row["bpp_min"] = float(sel[RATES[rate]].min())
        row["bpp_max"] = float(sel[RATES[rate]].max())
        det = sel.loc[sel["task"] == "detection", "ap"]
        row["det_ap_max"] = float(det.max()) if len(det) else math.nan
        row["images"] = len(points.image_ids)
        row["codec_version"] = points.versions[codec]
        for task, info in models.items():
            row[f"{task}_model"] = info["model"]
            row[f"{task}_model_sha256"] = info["sha256"]
        row.update(anchor=anchor, method=method, rate_axis=rate)
        if intervals is not None and intervals.by_axis:
            row.update(bootstrap=intervals.replicates, bootstrap_seed=intervals.seed)
    key = f"bd_rate_{_slug(axes[0])}" if axes else None
    order = sorted(rows, key=lambda c: (is_ceiling(c), _rank_value(rows[c], key), c))
    rank = 0
    for codec in order:
        if is_ceiling(codec):
            rows[codec]["rank"] = math.nan
        else:
            rank += 1
            rows[codec]["rank"] = rank
    frame = pd.DataFrame([rows[c] for c in order])
    frame["rank"] = frame["rank"].astype("Int64")
    first = ["rank", "codec"]
    return frame[first + [c for c in frame.columns if c not in first]], axes


def _rank_value(row: dict, key: str | None) -> float:
    v = row.get(key, math.nan) if key else math.nan
    return math.inf if v is None or math.isnan(v) else v


def _flag(rec: dict) -> str:
    flags = ""
    if rec["monotonic"] not in ("yes", ""):
        flags += "†"
    return flags + overlap_flag(rec["rate_overlap"])


def markdown(frame, axes: list[str], points: Points, *, anchor: str, method: str,
             rate: str, command: str = "",
             runs: Sequence[tuple[str, Sequence[dict]]] | None = None,
             intervals=None, imported: Sequence[tuple[str, Sequence[str]]] = ()) -> str:
    """The leaderboard as Markdown: ranking table, models, codec versions, how it was made
    and, given ``runs`` (see :func:`recorded_runs`), where; ``imported`` names the rows
    taken from points files (:func:`imported_rows`). With ``intervals`` (those of
    :func:`leaderboard_frame`'s frame), each BD-rate they cover is followed by its interval."""
    cols = [Column("rank", "rank", "{:.0f}"), Column("codec", "codec")]
    frame = frame.copy()
    for axis in axes:
        s = _slug(axis)
        # a low-overlap value is never set in bold as the best (as in the other tables)
        frame[f"low_{s}"] = [overlap_flag(v) for v in frame[f"overlap_{s}"]]
        suffix = f"flag_{s}"
        if f"bd_rate_{s}_low" in frame:
            suffix = f"after_{s}"
            frame[suffix] = [" ".join(t for t in (flag, _span(lo, hi)) if t) for flag, lo, hi
                             in zip(frame[f"flag_{s}"], frame[f"bd_rate_{s}_low"],
                                    frame[f"bd_rate_{s}_high"], strict=True)]
        cols.append(Column(f"bd_rate_{s}", f"BD-rate {METRICS[axis].label} (%)", "{:+.2f}",
                           "min", suffix=suffix, unranked=f"low_{s}"))
    if "det_ap_max" in frame and frame["det_ap_max"].notna().any():
        cols.append(Column("det_ap_max", "best det AP", "{:.1f}", "max"))
    cols += [Column("bpp_min", "bpp min", "{:.3f}"), Column("bpp_max", "bpp max", "{:.3f}"),
             Column("points", "points", "{:d}")]
    lines = [
        "# Leaderboard",
        "",
        f"BD-rate against **{anchor}** ({method} interpolation, {rate} bpp) over "
        f"{len(points.image_ids)} COCO val2017 images; negative is better (less rate for "
        "the same quality). Ranked by the first column. † a curve is non-monotonic (its "
        f"dominated points dropped); ‡ the curves overlap on less than {LOW_OVERLAP:.0f} % "
        "of their quality range; — no value (see leaderboard.csv for the reason)."
        + (f" [low, high]: the BD-rate's {intervals.caption()}." if intervals is not None
           and intervals.by_axis else ""),
        "",
        to_markdown(frame, cols),
        "",
        "Task models:",
        "",
    ]
    for task in ("detection", "segmentation"):
        for _key, info in points.models(task).items():
            lines.append(f"- {task}: `{info['model']}` sha256 `{info['sha256']}`")
    lines += ["", "Codec versions:", ""]
    lines += [f"- {c}: `{v}`" for c, v in points.versions.items()]
    lines += ["", "The standard run and report that make this file:", "", "```bash", *COMMANDS,
              "```", ""]
    if command and command != COMMANDS[-1]:
        lines += ["This copy was made with:", "", "```bash", command, "```", ""]
    if runs is not None:
        lines += recorded_runs(runs)
    if any(labels for _path, labels in imported):
        lines += imported_rows(imported)
    return "\n".join(lines)


def imported_rows(imported: Sequence[tuple[str, Sequence[str]]]) -> list[str]:
    """Markdown lines naming the codec labels whose rows came from a points file
    (``bench report --with-points``), each under its file.

    Why: those rows were not made by this store's commands, so the machines listed for the
    store did not make them; where they were made is recorded with the file's own
    leaderboard (in the commit that wrote it).
    """
    lines = ["Rows not made by the commands above, taken from a points file "
             "(`--with-points`): the machines that made them are recorded in the "
             "`leaderboard.md` written with that file (see its history in git), not here:", ""]
    lines += [f"- `{path}`: {', '.join(f'`{c}`' for c in labels)}"
              for path, labels in imported if labels]
    return lines + [""]


def _span(low: float, high: float) -> str:
    """``[-45.06, -18.20]``, or "" without an interval (the anchor, an undefined value)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return ""
    return f"[{low:+.2f}, {high:+.2f}]"


def recorded_runs(runs: Sequence[tuple[str, Sequence[dict]]]) -> list[str]:
    """Markdown lines: the commands recorded in the run's store, each under the machines it
    ran on (:meth:`bench.store.ResultsStore.command_records`), each machine described once.

    Why: the learned codecs' bytes and the int8 detectors' AP depend on the CPU kind, so the
    leaderboard says where its rows were made, not only how.
    """
    if not runs:
        return ["The run's store records no commands (it was made before `bench run` kept "
                "them).", ""]
    machines: list[dict] = []
    for _command, ran_on in runs:
        machines += [m for m in ran_on if m not in machines]
    names = {i: chr(ord("A") + i) if i < 26 else str(i + 1) for i in range(len(machines))}
    lines = ["Recorded in the run's store by `bench run`: its commands and the machines each "
             "ran on (a row may come from any machine its command ran on):", ""]
    lines += [f"- machine {names[i]}: {describe_environment(m)}" for i, m in enumerate(machines)]
    lines += ["", "```bash"]
    for command, ran_on in runs:
        on = ", ".join(names[machines.index(m)] for m in ran_on)
        lines += [f"# machine {on}" if ran_on else
                  "# machine not recorded (run before bench run kept it)", command]
    return lines + ["```", ""]


def write_leaderboard(points: Points, out_dir: str | Path, *, anchor: str,
                      method: str = "pchip", rate: str = "pooled", policy: str = "pareto",
                      command: str = "",
                      runs: Sequence[tuple[str, Sequence[dict]]] | None = None,
                      intervals=None,
                      imported: Sequence[tuple[str, Sequence[str]]] = ()) -> list[Path]:
    """Write ``leaderboard.csv``, ``leaderboard.md`` and ``leaderboard_points.csv`` (the
    points ranked, which ``bench report --with-points`` reads back) into ``out_dir``; return
    the paths.

    ``command`` is the command line that made them, recorded in the Markdown when it is not
    the standard one; ``runs`` are the commands recorded in the run's store with the
    machines each ran on (:func:`recorded_runs`), left out when None; ``imported`` the
    points files' paths with the labels taken from each (:func:`imported_rows`). ``intervals``
    (:class:`bench.report.bootstrap.Intervals`) puts each BD-rate's bootstrap interval beside
    it on the axes it covers.
    """
    frame, axes = leaderboard_frame(points, anchor=anchor, method=method, rate=rate,
                                    policy=policy, intervals=intervals)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / "leaderboard.csv", out / "leaderboard.md"
    points_path = out / POINTS_FILE
    csv_path.write_text(to_csv(frame))
    md_path.write_text(markdown(frame, axes, points, anchor=anchor, method=method, rate=rate,
                                command=command, runs=runs, intervals=intervals,
                                imported=imported))
    points_path.write_text(points_csv(points))
    return [csv_path, md_path, points_path]
