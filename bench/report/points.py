"""The points table: one row per (codec, quality, task, model) read from a run's store.

Each row carries the image metrics of the (codec, quality) — pooled bpp (Σ bits / Σ pixels),
mean bpp, mean PSNR, ROI-PSNR, background PSNR and MS-SSIM — and, for each task model that
scored it, COCO AP, AP50, AP75 (boxes) and mask AP, AP50, AP75 (segmentation), with the
provenance needed to trust the number: codec version, model file and sha256, image counts.
A (codec, quality) that no task scored has one row with an empty task.

The ``codec`` column holds the codec's *label* (:mod:`bench.labels`): its plain name for a
run with default options, ``name@key-value…`` otherwise (``ggm@roi-none``), so two option
sets of one codec are two curves, and ``--codec``/``--anchor`` pick either by label.

Codecs are compared over the same images: by default only the images every selected
(codec label, quality) coded without error (``images="common"``). Of several codec versions
under one label the most recently written is used. Task scores come from the store's cache when they
were computed on exactly these predictions, else they are computed with pycocotools (which
needs the COCO annotations) and cached.

A points table also travels as a CSV (:func:`points_csv`; the leaderboard writes one beside
itself) that names its image set by a digest, so that another run over the same images and
task models can be reported together with it (:func:`with_points`) without re-running the
codecs it holds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bench.labels import codec_name
from bench.store import ResultsStore
from bench.summary import ms_ssim_gap_note, summarize

if TYPE_CHECKING:
    import pandas as pd

#: Codecs whose single point is a ceiling, not a rate–quality curve.
CEILING_CODECS = ("original",)
#: Rate axes: CLI name → points column.
RATES = {"pooled": "bpp_pooled", "mean": "bpp_mean"}
#: Image-selection modes (see the module docstring).
IMAGE_MODES = ("common", "all")


@dataclass(frozen=True)
class Metric:
    """A quality axis: its CLI name, points column, task (None: image metric) and label."""

    key: str
    column: str
    task: str | None
    label: str
    unit: str
    #: short name for table headers (``BD-`` + short)
    short: str = ""

    @property
    def axis_label(self) -> str:
        """Axis or column label with the unit, e.g. ``PSNR (dB)``."""
        return f"{self.label} ({self.unit})" if self.unit else self.label


METRICS: dict[str, Metric] = {m.key: m for m in (
    Metric("psnr", "psnr", None, "PSNR", "dB", "PSNR"),
    Metric("roi-psnr", "roi_psnr", None, "ROI-PSNR", "dB", "ROI-PSNR"),
    Metric("bg-psnr", "bg_psnr", None, "background PSNR", "dB", "BG-PSNR"),
    Metric("ms-ssim", "ms_ssim", None, "MS-SSIM", "", "MS-SSIM"),
    Metric("det-ap", "ap", "detection", "detection AP", "%", "AP"),
    Metric("det-ap50", "ap50", "detection", "detection AP50", "%", "AP50"),
    Metric("seg-ap", "mask_ap", "segmentation", "mask AP", "%", "mask AP"),
)}

#: COCO statistics kept per IoU type: (iou type, stat, points column).
TASK_STATS = (("bbox", "AP", "ap"), ("bbox", "AP50", "ap50"), ("bbox", "AP75", "ap75"),
              ("segm", "AP", "mask_ap"), ("segm", "AP50", "mask_ap50"),
              ("segm", "AP75", "mask_ap75"))

COLUMNS = ("codec", "quality", "task", "model", "bpp_pooled", "bpp_mean", "psnr", "roi_psnr",
           "bg_psnr", "ms_ssim", "ap", "ap50", "ap75", "mask_ap", "mask_ap50", "mask_ap75",
           "images", "errors", "task_images", "task_errors", "codec_version", "model_sha256",
           "model_key", "grid_index")


class ReportError(RuntimeError):
    """The store cannot give the report asked for; the message says why and what to do."""


@dataclass
class Points:
    """The points table with what it was computed over."""

    frame: pd.DataFrame
    image_ids: list[int]
    #: {codec label: codec version}
    versions: dict[str, str]
    notes: list[str] = field(default_factory=list)

    def codecs(self) -> list[str]:
        """Codec labels in the table, in order."""
        return list(dict.fromkeys(self.frame["codec"]))

    def models(self, task: str) -> dict[str, dict]:
        """{model key: {"model": file name, "sha256": …}} of the models that scored a task."""
        rows = self.frame[self.frame["task"] == task]
        return {k: {"model": m, "sha256": s} for k, m, s in
                rows[["model_key", "model", "model_sha256"]].drop_duplicates().itertuples(
                    index=False)}


@dataclass(frozen=True)
class StoredTask:
    """The parts of a task that :func:`bench.scoring.score` needs, rebuilt from the store."""

    name: str
    key: str
    iou_types: tuple[str, ...]

    def model_key(self) -> str:
        """The model key its predictions are stored under."""
        return self.key


def is_ceiling(label: str) -> bool:
    """Whether a codec label is of a ceiling codec (:data:`CEILING_CODECS`)."""
    return codec_name(label) in CEILING_CODECS


def grid(codec: str) -> tuple[str, ...]:
    """The installed codec's quality grid (low → high rate), or () for an unknown codec.

    ``codec`` is a name or a label.
    """
    from bench.registry import CODECS

    try:
        return tuple(CODECS.get(codec_name(codec)).qualities)
    except Exception:  # a plugin that is gone or broken: order by rate instead
        return ()


def iou_types(task: str) -> tuple[str, ...]:
    """The IoU types a task is scored with, from its registered class."""
    from bench.registry import TASKS

    try:
        return tuple(TASKS.get(task).iou_types)
    except Exception:
        return ("segm", "bbox") if task == "segmentation" else ("bbox",)


def latest_versions(store: ResultsStore) -> tuple[dict[str, str], list[str]]:
    """{label: its most recently written version}, and notes on older versions left out.

    A row without a label (written before labels existed) counts under the codec name.
    """
    rows = store.db.execute(
        "SELECT COALESCE(label, codec) AS lab, codec_version, MAX(created) FROM results "
        "GROUP BY lab, codec_version ORDER BY lab, MAX(created)").fetchall()
    versions, notes = {}, []
    for label, version, _ in rows:
        if label in versions:
            notes.append(f"{label}: older version {versions[label]!r} left out")
        versions[label] = version
    return versions, notes


class LazyCoco:
    """COCO ground truth loaded on first use: cached scores need no annotations at all."""

    def __init__(self, loader: Callable[[], object]):
        self._loader = loader
        self._coco = None

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        if self._coco is None:
            self._coco = self._loader()
        return getattr(self._coco, name)


def coco_loader(data_root: str | None, split: str = "val2017") -> LazyCoco:
    """A lazily loaded pycocotools COCO of ``split`` under ``data_root`` (or the default)."""
    def load():
        from bench.data.coco import CocoDataset

        return CocoDataset(data_root, split).coco

    return LazyCoco(load)


def build_points(store: ResultsStore, *, codecs: Sequence[str] | None = None,
                 images: str = "common", coco=None,
                 image_ids: Sequence[int] | None = None) -> Points:
    """The points table of a store (see the module docstring).

    ``codecs`` limits the codec labels (default: all in the store); ``images`` is ``common`` or
    ``all``; ``coco`` is the ground truth (a pycocotools COCO or :class:`LazyCoco`), needed
    only for task scores not cached yet; ``image_ids`` restricts the images further.
    """
    if images not in IMAGE_MODES:
        raise ValueError(f"images must be one of {IMAGE_MODES}, got {images!r}")
    versions, notes = latest_versions(store)
    if codecs is not None:
        missing = [c for c in codecs if c not in versions]
        if missing:
            raise ReportError(f"codec(s) {', '.join(missing)} not in {store.path} "
                              f"(it has: {', '.join(versions) or 'nothing'})")
        versions = {c: versions[c] for c in codecs}
    if not versions:
        raise ReportError(f"{store.path} has no results; run `bench run` first")
    rows = [r for c, v in versions.items()
            for r in store.results(codec_name(c), v, image_ids=image_ids, label=c)]
    cells: dict[tuple[str, str], set[int]] = {}
    errors: dict[tuple[str, str], int] = {}
    for r in rows:
        cells.setdefault((r.label, r.quality), set())
        if r.ok:
            cells[(r.label, r.quality)].add(r.image_id)
        else:
            errors[(r.label, r.quality)] = errors.get((r.label, r.quality), 0) + 1
    common = sorted(set.intersection(*cells.values())) if cells else []
    if images == "common":
        if not common:
            raise ReportError("no image was coded without error by every codec and quality; "
                              "use --images all or --codec to compare fewer codecs")
        keep = set(common)
        dropped = len({r.image_id for r in rows} - keep)
        rows = [r for r in rows if r.image_id in keep]
        if dropped:
            notes.append(f"{dropped} image(s) not coded by every codec/quality left out")
    orders = _quality_orders(versions, rows, notes)
    summaries = summarize(rows, list(versions), orders)
    task_cells = _task_cells(store, versions)
    records = []
    for s in summaries:
        ids = common if images == "common" else sorted(cells[(s.label, s.quality)])
        base = {"codec": s.label, "quality": s.quality, "task": "", "model": "",
                "bpp_pooled": s.bpp_pooled, "bpp_mean": s.bpp_mean, "psnr": s.psnr,
                "roi_psnr": s.roi_psnr, "bg_psnr": s.bg_psnr, "ms_ssim": s.ms_ssim,
                "images": s.images - s.errors, "errors": errors.get((s.label, s.quality), 0),
                "codec_version": versions[s.label], "model_sha256": "", "model_key": "",
                "grid_index": orders[s.label].index(s.quality)}
        if s.ms_ssim_skipped:
            notes.append(ms_ssim_gap_note(s))
        scored = task_cells.get((s.label, s.quality), [])
        if not scored:
            records.append(base)
        for task, key in scored:
            rec = {**base, **_task_record(store, coco, task, key, s.codec, versions[s.label],
                                          s.quality, ids, notes)}
            if rec["task_images"] and rec["task_images"] < len(ids):
                notes.append(f"{s.label} {s.quality} {task}: scored on {rec['task_images']} "
                             f"of {len(ids)} images (predictions missing or failed)")
            records.append(rec)
    import pandas as pd

    frame = pd.DataFrame.from_records(records, columns=list(COLUMNS))
    return Points(frame, list(common) if images == "common" else sorted(
        set().union(*cells.values())), versions, notes)


def _quality_orders(versions: dict[str, str], rows, notes: list[str]) -> dict[str, list[str]]:
    """Each label's qualities in grid order; qualities off the installed grid by rate.

    A point of an ROI variant is named ``<grid point>-<suffix>`` (``qp37-d16``, ``q50-b2``)
    and takes its grid point's place, so a variant's curve is checked for monotonicity in
    grid order like its codec's, not in an order made from its own rates.
    """
    orders = {}
    for codec in versions:
        present = {r.quality for r in rows if r.label == codec}
        place = {q: i for i, q in enumerate(grid(codec))}
        index = {q: _grid_point(q, place) for q in present}
        g = sorted((q for q, i in index.items() if i is not None), key=lambda q: (index[q], q))
        extra = sorted((q for q, i in index.items() if i is None),
                       key=lambda q: _pooled_rate(rows, codec, q))
        if extra:
            notes.append(f"{codec}: {', '.join(extra)} not on the installed grid; "
                         "ordered by rate")
        orders[codec] = g + extra
    return orders


def _grid_point(quality: str, place: dict[str, int]) -> int | None:
    """The grid index of ``quality``, or of the grid point it suffixes (``qp37-d16`` →
    ``qp37``'s); None when it is neither."""
    if quality in place:
        return place[quality]
    base, dash, _suffix = quality.rpartition("-")
    return place.get(base) if dash else None


def _pooled_rate(rows, label: str, quality: str) -> float:
    sel = [r for r in rows if r.label == label and r.quality == quality and r.ok]
    pixels = sum(r.width * r.height for r in sel)
    return 8.0 * sum(r.bytes for r in sel) / pixels if pixels else math.inf


def _task_cells(store: ResultsStore,
                versions: dict[str, str]) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """{(label, quality): [(task, model key)]} of the predictions of the versions reported."""
    labels = {(codec_name(lab), v): lab for lab, v in versions.items()}
    out: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for codec, version, quality, task, key in store.db.execute(
            "SELECT DISTINCT codec, codec_version, quality, task, model_key FROM predictions "
            "ORDER BY task, model_key"):
        label = labels.get((codec, version))
        if label is not None:
            out.setdefault((label, quality), []).append((task, key))
    return out


def _task_record(store: ResultsStore, coco, task: str, key: str, codec: str, version: str,
                 quality: str, ids: list[int], notes: list[str]) -> dict:
    from bench.scoring import score

    info = store.model_info(key) or {}
    rec: dict = {"task": task, "model": info.get("model", key.split(":")[0]),
                 "model_sha256": info.get("sha256", ""), "model_key": key}
    stask = StoredTask(task, key, iou_types(task))
    try:
        if coco is None:
            coco = _NoCoco()
        result = score(store, coco, stask, codec, version, quality, ids)
    except Exception as exc:  # annotations missing or unreadable: the cell stays NaN
        note = f"{task} scores not available ({type(exc).__name__}: {exc})"
        if note not in notes:
            notes.append(note)
        result = {}
    rec["task_images"] = result.get("images", 0)
    rec["task_errors"] = result.get("errors", 0)
    for iou, stat, col in TASK_STATS:
        rec[col] = float(result.get(iou, {}).get(stat, math.nan))
    return rec


class _NoCoco:
    def __getattr__(self, name: str):
        raise ReportError("scores are not cached for these images and no COCO annotations "
                          "were given; pass --data-root")


def ceiling(points: Points, metric: Metric, model_key: str = "") -> dict[str, float]:
    """{label: value} of the ceiling codecs (one point each) on a metric."""
    out = {}
    sel = _metric_rows(points.frame, metric, model_key)
    for label in points.codecs():
        if is_ceiling(label):
            rows = sel[sel["codec"] == label]
            if len(rows):
                out[label] = float(rows[metric.column].iloc[0])
    return out


def _metric_rows(frame: pd.DataFrame, metric: Metric, model_key: str = "") -> pd.DataFrame:
    if metric.task is None:
        return frame.drop_duplicates(["codec", "quality"])
    sel = frame[frame["task"] == metric.task]
    if model_key:
        sel = sel[sel["model_key"] == model_key]
    return sel


def metric_models(points: Points, metric: Metric) -> list[str]:
    """The model keys a metric has values for ('' for an image metric)."""
    if metric.task is None:
        return [""]
    return list(dict.fromkeys(points.frame.loc[points.frame["task"] == metric.task,
                                               "model_key"]))


def curves(points: Points, metric: Metric, rate: str = "pooled",
           model_key: str = "") -> dict[str, tuple[list[str], list[float], list[float]]]:
    """{label: (qualities, rates, values)} in grid order, ceiling codecs left out."""
    col = RATES[rate]
    sel = _metric_rows(points.frame, metric, model_key).sort_values(
        ["codec", "grid_index"], kind="stable")
    out = {}
    for codec in points.codecs():
        if is_ceiling(codec):
            continue
        c = sel[sel["codec"] == codec]
        if len(c):
            out[codec] = (list(c["quality"]), [float(v) for v in c[col]],
                          [float(v) for v in c[metric.column]])
    return out


#: Task columns of the wide table: (task, points column, header).
WIDE_TASK_COLUMNS = (("detection", "ap", "det AP"), ("detection", "ap50", "det AP50"),
                     ("detection", "ap75", "det AP75"), ("segmentation", "mask_ap", "mask AP"),
                     ("segmentation", "mask_ap50", "mask AP50"))


def wide(points: Points) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """One row per (codec label, quality) with one column per task statistic and model.

    Returns the frame and the added task columns as (column, header); a header names the
    model only where a task has several.
    """
    f = points.frame
    base = f.drop_duplicates(["codec", "quality"])[
        ["codec", "quality", "bpp_pooled", "bpp_mean", "psnr", "roi_psnr", "bg_psnr",
         "ms_ssim", "images"]].reset_index(drop=True)
    added = []
    for task, col, head in WIDE_TASK_COLUMNS:
        models = points.models(task)
        for key, info in models.items():
            name = f"{col}@{key}"
            sel = f[(f["task"] == task) & (f["model_key"] == key)]
            values = {(c, q): v for c, q, v in sel[["codec", "quality", col]].itertuples(
                index=False)}
            base[name] = [values.get((c, q), math.nan) for c, q in
                          base[["codec", "quality"]].itertuples(index=False)]
            added.append((name, head if len(models) == 1 else f"{head} {info['model']}"))
    return base, added


def wide_columns(task_columns: list[tuple[str, str]]):
    """How the wide points table (:func:`wide`) is shown to people.

    Rate columns are the axis, not a score: no value of theirs is marked best.
    """
    from bench.report.tables import Column

    return [Column("codec", "codec"), Column("quality", "quality"),
            Column("bpp_pooled", "bpp pooled", "{:.4f}"),
            Column("bpp_mean", "bpp mean", "{:.4f}"),
            Column("psnr", "PSNR (dB)", "{:.2f}", "max"),
            Column("roi_psnr", "ROI-PSNR (dB)", "{:.2f}", "max"),
            Column("bg_psnr", "BG-PSNR (dB)", "{:.2f}", "max"),
            Column("ms_ssim", "MS-SSIM", "{:.4f}", "max")] + [
        Column(key, head + " (%)", "{:.1f}", "max") for key, head in task_columns] + [
        Column("images", "images", "{:d}")]


# ------------------------------------------------------------------ points files
#: Column of a points CSV that names the images its points were computed over.
IMAGE_SET = "image_set"
#: Columns of a points CSV that hold text (the rest are numbers, empty where none).
_TEXT_COLUMNS = ("codec", "quality", "task", "model", "codec_version", "model_sha256",
                 "model_key", IMAGE_SET)
#: Columns of a points CSV that hold counts: always there, or empty where no task scored.
_COUNT_COLUMNS = ("images", "errors", "grid_index")
_TASK_COUNT_COLUMNS = ("task_images", "task_errors")
#: What makes a points row: one per (codec, quality, task, model).
_ROW_KEY = ["codec", "quality", "task", "model_key"]


def image_set(ids: Sequence[int]) -> str:
    """A short name of a set of image ids, e.g. ``79:4be1c0d2a6f3e1b9`` (count: sha256 prefix).

    Points are comparable only over one image set; a points file carries this name so that
    ``--with-points`` can check it without listing every id.
    """
    import hashlib

    unique = sorted({int(i) for i in ids})
    text = ",".join(map(str, unique))
    return f"{len(unique)}:{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def points_csv(points: Points) -> str:
    """The points table as CSV: one row per (codec, quality, task, model) at full precision,
    every provenance column, and the image set (:func:`image_set`); the format that
    ``bench report --with-points`` reads back, and writes again unchanged."""
    from bench.report.tables import to_csv

    counts = {c: points.frame[c].astype("Int64") for c in (*_COUNT_COLUMNS,
                                                            *_TASK_COUNT_COLUMNS)}
    return to_csv(points.frame.assign(**counts, **{IMAGE_SET: image_set(points.image_ids)}))


def read_points_csv(path: str | Path) -> pd.DataFrame:
    """A points CSV written by :func:`points_csv`, checked; raises :class:`ReportError`.

    Numbers are read exactly as written (Python's float parsing: a file read and written
    again is the same text).
    """
    import pandas as pd

    path = Path(path)
    how = ("write one with `bench report --run-dir RUN --points --format csv --output FILE`, "
           "or use the leaderboard's results/leaderboard_points.csv")
    if not path.is_file():
        raise ReportError(f"--with-points {path}: no such file; {how}")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise ReportError(f"--with-points {path}: not a points CSV ({exc}); {how}") from exc
    missing = [c for c in (*COLUMNS, IMAGE_SET) if c not in frame.columns]
    if missing:
        raise ReportError(f"--with-points {path}: not a points CSV with image set (missing "
                          f"column(s) {', '.join(missing)}); {how}")
    if frame.empty:
        raise ReportError(f"--with-points {path}: no points in it; {how}")
    for col in COLUMNS:
        if col in _TEXT_COLUMNS:
            continue
        try:
            if col in _COUNT_COLUMNS or col in _TASK_COUNT_COLUMNS:
                frame[col] = pd.array([_count(v, col in _COUNT_COLUMNS) for v in frame[col]],
                                      dtype="Int64")
            else:
                frame[col] = frame[col].replace("", "nan").astype(float)
        except ValueError as exc:
            raise ReportError(f"--with-points {path}: column {col}: {exc}; {how}") from exc
    for col in _COUNT_COLUMNS:
        frame[col] = frame[col].astype(int)
    repeated = frame[frame.duplicated(_ROW_KEY, keep=False)]
    if len(repeated):
        first = repeated.iloc[0]
        raise ReportError(f"--with-points {path}: {len(repeated)} rows repeat a (codec, "
                          f"quality, task, model), e.g. {first['codec']} {first['quality']} "
                          f"{first['task'] or '(no task)'}; {how}")
    return frame


def _count(text: str, required: bool):
    """A count cell: a whole number, or empty (None) where ``required`` is False."""
    if text == "" and not required:
        return None
    value = float(text)  # "" or "x" raise ValueError
    if not value.is_integer() or value < 0:
        raise ValueError(f"{text!r} is not a count")
    return int(value)


def with_points(points: Points, path: str | Path, codecs: Sequence[str] | None = None,
                run_labels: Sequence[str] | None = None) -> Points:
    """``points`` plus the codec labels of the points CSV at ``path`` that it lacks.

    A label in both keeps ``points``' rows (a run re-measuring one codec replaces it); the
    labels come in the file's order, then those only ``points`` has. ``codecs`` limits the
    labels taken from the file; ``run_labels`` are those of ``points`` that the run measured
    (default: all; the others came from an earlier file), for the notes. Both must cover the
    same images, every point of the file all of them, and score each task they share with
    the same model and settings (model key and sha256), else :class:`ReportError` says what
    differs.
    """
    import pandas as pd

    imported = read_points_csv(path)
    sets = sorted(set(imported[IMAGE_SET]))
    ours = image_set(points.image_ids)
    if len(sets) != 1:
        raise ReportError(f"--with-points {path}: its points are over {len(sets)} image "
                          "sets; a points file must come from one run (--images common)")
    if sets[0] != ours:
        raise ReportError(
            f"--with-points {path}: its points are over the image set {sets[0]} "
            f"(count:digest), this run's over {ours}; compare codecs on the same images "
            "(the same --data-root, --split and --limit, every image coded without error)")
    short = imported[imported["images"] != len(points.image_ids)]
    if len(short):
        first = short.iloc[0]
        raise ReportError(
            f"--with-points {path}: {len(short)} of its points are over fewer than the "
            f"{len(points.image_ids)} images of its image set (e.g. {first['codec']} "
            f"{first['quality']}: {first['images']}), as with --images all; write it with "
            "--images common")
    for task in sorted({t for t in imported["task"] if t} & set(points.frame["task"])):
        theirs = _model_pairs(imported, task)
        mine = _model_pairs(points.frame, task)
        if theirs != mine:
            raise ReportError(
                f"--with-points {path}: {task} is scored by {_pairs_text(theirs)} there and "
                f"by {_pairs_text(mine)} in this run; run with the same --model and settings")
    labels = list(dict.fromkeys(imported["codec"]))
    if codecs is not None:
        labels = [c for c in labels if c in codecs]
    notes = list(points.notes)
    measured = set(points.versions if run_labels is None else run_labels)
    for label in labels:
        if label in measured:
            notes.append(f"{label}: this run's points, not those of {path}")
        elif label in points.versions:
            notes.append(f"{label}: the points of an earlier --with-points file, not those "
                         f"of {path}")
    added = [c for c in labels if c not in points.versions]
    if added:
        notes.append(f"{', '.join(added)}: points from {path}")
    rows = imported.loc[imported["codec"].isin(added), list(COLUMNS)]
    versions = dict(points.versions)
    for label in added:
        found = sorted(set(rows.loc[rows["codec"] == label, "codec_version"]))
        versions[label] = found[0] if len(found) == 1 else " | ".join(found)
    merged = Points(pd.concat([points.frame, rows], ignore_index=True), list(points.image_ids),
                    versions, notes)
    # the file's order first (a leaderboard regenerated this way changes only its new rows)
    return reorder(merged, labels)


def reorder(points: Points, labels: Sequence[str]) -> Points:
    """``points`` with its codec labels in the order of ``labels`` (the rest after them)."""
    import pandas as pd

    order = [c for c in labels if c in points.versions]
    order += [c for c in points.versions if c not in order]
    frame = pd.concat([points.frame[points.frame["codec"] == c] for c in order],
                      ignore_index=True)
    return Points(frame, points.image_ids, {c: points.versions[c] for c in order},
                  points.notes)


def _model_pairs(frame: pd.DataFrame, task: str) -> set[tuple[str, str]]:
    rows = frame[frame["task"] == task]
    return set(rows[["model_key", "model_sha256"]].itertuples(index=False, name=None))


def _pairs_text(pairs: set[tuple[str, str]]) -> str:
    return ", ".join(f"{key} (sha256 {sha[:12]}…)" for key, sha in sorted(pairs)) or "nothing"
