"""``bench report``: BD-rate tables, the points table, RD plots and the leaderboard of a run.

Everything is read from RUN_DIR/results.sqlite. BD-rate and BD-metric of every codec are
computed against an anchor codec (default: the first of vtm, vvc, jpeg in the store) on one
or more quality axes, with the overlap of the two curves and whether either curve is
non-monotonic next to every value. Codecs are compared over the images all of them coded.
A codec run with non-default options is its own codec, named by its label: name@key-value
(e.g. ggm@roi-none after `bench run --codec ggm --roi none`).

Examples:
  bench report --run-dir runs/r --anchor jpeg --metric psnr --metric det-ap
  bench report --run-dir runs/r --anchor ggm@roi-none --metric roi-psnr
  bench report --run-dir runs/r --points --format csv --output points.csv
  bench report --run-dir runs/r --anchor vvc --metric det-ap --bootstrap 200 \
      --coco-eval faster-coco-eval      # with 95 % intervals over the images
  bench report --run-dir runs/r --format latex --metric det-ap --output bd.tex
  bench report --run-dir runs/r --plot figures/ --plot-style paper --metric det-ap
  bench report --run-dir runs/r --html report/        # open report/index.html
  bench report --run-dir runs/leaderboard --leaderboard results/
  bench report --run-dir runs/mine --with-points results/leaderboard_points.csv \
      --anchor vvc --metric det-ap      # your codec against the leaderboard's, no re-run

--with-points adds the codecs of a points file (`--points --format csv`, or the leaderboard's
results/leaderboard_points.csv) measured on the same images with the same task models, so a
new codec can be ranked against the published curves by running only the new codec; a codec
in both is taken from the run.

--bootstrap N says how far the image sample alone moves each BD value: it resamples the
images N times with replacement and gives the 2.5th and 97.5th percentiles of the values
(in CSV also the median and the share of resamples below 0), in the printed or --output
table and, for the same --metric axes, in --html's tables; with --leaderboard, beside every
BD-rate of the leaderboard (all its axes; not with --with-points, whose points file has no
per-image values). On a few dozen images an AP BD-rate commonly moves by tens of points.

--points, --plot and --html need no anchor: without one (none named, none of the default
ones in the store) the BD table is left out and said so, e.g. for a run of a single codec.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def register(sub) -> None:
    """Add the ``report`` command to the ``bench`` sub-parsers.

    The choices stay in ``bench.report`` (pandas, scipy) until a value is checked or this
    command's help is printed (:class:`~bench.cli.choices.LazyChoices`): building the parser
    must not import them.
    """
    from bench.cli.choices import LazyChoices

    p = sub.add_parser(
        "report",
        help="BD-rate tables, points table, RD plots and leaderboard from a run's store",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--run-dir", default="runs/default",
                   help="directory of the results store (default: runs/default)")
    p.add_argument("--codec", action="append", metavar="LABEL",
                   help="only these codecs, by label: the name, or name@key-value for "
                   "non-default options, e.g. ggm@roi-none (repeatable; default: every codec "
                   "in the store)")
    p.add_argument("--anchor", default=None, metavar="LABEL",
                   help="anchor codec (label) of the BD values (default: first of vtm, vvc, "
                   "jpeg in the store)")
    p.add_argument("--metric", action="append", metavar="METRIC",
                   choices=LazyChoices("bench.report.points", "METRICS"),
                   help="quality axis of the BD table (repeatable): %(choices)s "
                   "(default: psnr); with --plot or --html, also the only figures and curves "
                   "drawn (default there: every metric with values)")
    p.add_argument("--method", choices=LazyChoices("bench.report.bd", "METHODS"),
                   default="pchip", metavar="METHOD",
                   help="curve interpolation (%(choices)s): pchip as in the JVET CTC "
                   "(default), cubic as in VCEG-M33")
    p.add_argument("--rate", choices=LazyChoices("bench.report.points", "RATES"),
                   default="pooled", metavar="RATE",
                   help="rate axis (%(choices)s): pooled bpp = Σbits/Σpixels (default) or "
                   "mean bpp")
    p.add_argument("--images", choices=LazyChoices("bench.report.points", "IMAGE_MODES"),
                   default="common", metavar="MODE",
                   help="images per point (%(choices)s): common, only images every "
                   "codec/quality coded (default); all, each point over its own images")
    p.add_argument("--non-monotonic", choices=LazyChoices("bench.report.bd", "POLICIES"),
                   default="pareto", metavar="POLICY",
                   help="non-monotonic curve (%(choices)s): drop its dominated points and "
                   "say so (pareto, default) or give no BD value (nan)")
    p.add_argument("--format", choices=LazyChoices("bench.report.tables", "FORMATS"),
                   default="text", metavar="FORMAT",
                   help="table format (%(choices)s; default: text, best values marked *; "
                   "a BD value on less than 75 %% overlap is flagged ‡ and never marked); "
                   "latex needs \\usepackage{booktabs} (and graphicx for the wide points "
                   "table)")
    p.add_argument("--points", action="store_true",
                   help="print the points table instead of the BD table: in CSV one row per "
                   "(codec, quality, task, model) with every provenance column, else one row "
                   "per (codec, quality) with AP columns per task")
    p.add_argument("--output", default=None, metavar="FILE",
                   help="write the table to FILE instead of standard output")
    p.add_argument("--plot", default=None, metavar="DIR",
                   help="also write one RD figure per metric (PNG and PDF) into DIR; "
                   "--metric limits the figures (default: every metric with values)")
    p.add_argument("--plot-style", choices=LazyChoices("bench.report.plots", "STYLES"),
                   default="screen", metavar="STYLE",
                   help="figure style (%(choices)s): screen, 6.4×4.4 in with a title "
                   "(default); paper, single-column 3.5 in wide, fonts ≥ 8 pt, no title, "
                   "legend under the axes, PNG at 300 dpi")
    p.add_argument("--html", default=None, metavar="DIR",
                   help="also write a static HTML report into DIR (index.html and its "
                   "assets; opens offline): sortable BD table, interactive RD curves, a "
                   "gallery of reconstructions, provenance; --metric limits the curves")
    p.add_argument("--html-images", default=None, metavar="N|IDS",
                   help="gallery images: a count spread over object coverage (default: 6), "
                   "or image ids (139,285; a single id as 139,); 0 for no gallery")
    p.add_argument("--html-bpp", type=float, action="append", metavar="BPP",
                   help="gallery rate: each codec shows its grid point nearest BPP "
                   "(repeatable; default: 0.3)")
    p.add_argument("--leaderboard", default=None, metavar="DIR",
                   help="also write DIR/leaderboard.csv, DIR/leaderboard.md and "
                   "DIR/leaderboard_points.csv (the points it ranks, for --with-points)")
    p.add_argument("--with-points", action="append", metavar="FILE",
                   help="also report the codecs of a points CSV (from --points --format csv, "
                   "or a leaderboard_points.csv) over the same images and task models; a "
                   "codec in the store is taken from the store (repeatable: an earlier file "
                   "wins); not with --html (its gallery needs every codec's bitstreams) or "
                   "--images all")
    p.add_argument("--bootstrap", type=int, default=0, metavar="N",
                   help="add a 95 %% interval to every BD value: the percentiles of N "
                   "resamples of the images drawn with replacement, each point re-scored "
                   "from the stored rows and predictions (nothing is coded again). Picture "
                   "metrics take seconds; AP evaluates every point of every codec N times "
                   "(about 0.8 s each with pycocotools, 0.14 s with --coco-eval "
                   "faster-coco-eval); 200 is a good count (default: 0, no intervals)")
    p.add_argument("--bootstrap-seed", type=int, default=0, metavar="SEED",
                   help="seed of the resamples, the same for every metric (default: 0)")
    p.add_argument("--coco-eval", default=None,
                   choices=LazyChoices("bench.tasks.cocoeval", "EVALUATORS"), metavar="EVAL",
                   help="COCO evaluator of --bootstrap's resamples (%(choices)s; default: "
                   "pycocotools, the reference; faster-coco-eval gives the same AP faster); "
                   "the table's own AP values are the store's")
    p.add_argument("--data-root", default=None,
                   help="COCO root for task scores not cached in the store (default: "
                   "$BENCH_DATA_ROOT, else ~/.cache/bench/coco)")
    p.add_argument("--split", default="val2017", help="COCO split of the run (default: "
                   "val2017)")
    p.set_defaults(func=main)


def _fail(message: str) -> int:
    print(f"bench report: error: {message}", file=sys.stderr)
    return 2


def bd_tables(points, metrics: list[str], anchor: str, args, store=None, coco=None,
              intervals=None, evaluations: dict | None = None) -> list[tuple[str, object]]:
    """[(title, BD DataFrame)] for every metric and task model asked for; with
    ``args.bootstrap``, each with its bootstrap intervals (read from ``store``, AP against
    ``coco``), also kept in ``intervals`` (a :class:`bench.report.bootstrap.Intervals`);
    ``evaluations`` keeps the COCO evaluations for the report's later bootstraps."""
    from bench.report.bd import bd_table
    from bench.report.bootstrap import Intervals
    from bench.report.points import METRICS, metric_models

    if args.bootstrap and intervals is None:
        intervals = Intervals(args.bootstrap, args.bootstrap_seed, {})

    out = []
    if evaluations is None:
        evaluations = {}  # COCO stats by draw, shared by det-ap, det-ap50 and det-ap75
    for key in metrics:
        metric = METRICS[key]
        models = metric_models(points, metric)
        if not models:
            raise ValueError(f"--metric {key}: no {metric.task} scores in the store; run "
                             f"`bench run --task {metric.task}` first")
        for model_key in models:
            frame = bd_table(points, key, anchor, method=args.method, rate=args.rate,
                             policy=args.non_monotonic, model_key=model_key)
            title = (f"BD vs {anchor} on {metric.axis_label}, {args.method}, {args.rate} bpp, "
                     f"{len(points.image_ids)} images")
            if model_key:
                title += f", {metric.task} model {frame['model'].iloc[0]}"
            if args.bootstrap:
                from bench.report.bootstrap import add_intervals

                found = _intervals(frame, points, store, coco, key, anchor, args, model_key,
                                   evaluations)
                intervals.by_axis[(key, model_key)] = found
                frame = add_intervals(frame, found, args.bootstrap, args.bootstrap_seed)
                title += "; " + intervals.caption()
            out.append((title, frame))
    return out


def _intervals(frame, points, store, coco, key: str, anchor: str, args, model_key: str,
               evaluations: dict):
    """The bootstrap intervals of a BD table's values, under a progress bar; COCO
    evaluations are kept in ``evaluations`` for the next metric they give."""
    from bench.report.bootstrap import bootstrap_bd
    from bench.runner import progress_bar

    expected = {c: (r, m) for c, r, m in frame[["codec", "bd_rate", "bd_metric"]].itertuples(
        index=False)}
    with progress_bar(args.bootstrap, f"bootstrap {key}", unit="resample") as bar:
        intervals = bootstrap_bd(points, store, coco, key, anchor,
                                 replicates=args.bootstrap, seed=args.bootstrap_seed,
                                 method=args.method, rate=args.rate,
                                 policy=args.non_monotonic, model_key=model_key,
                                 evaluator=args.coco_eval or "pycocotools",
                                 expected=expected, advance=lambda: bar.update(1),
                                 evaluations=evaluations)
    return intervals


def _leaderboard_intervals(points, store, coco, anchor: str, args, intervals,
                           evaluations: dict) -> None:
    """Add to ``intervals`` the bootstrap of every leaderboard axis the printed tables did not
    cover (the leaderboard ranks on its own axes, whatever --metric asked for)."""
    from bench.report.bd import bd_table
    from bench.report.leaderboard import AXES
    from bench.report.points import METRICS, metric_models

    for axis in AXES:
        models = metric_models(points, METRICS[axis])
        if not models or (axis, models[0]) in intervals.by_axis:
            continue
        frame = bd_table(points, axis, anchor, method=args.method, rate=args.rate,
                         policy=args.non_monotonic, model_key=models[0])
        intervals.by_axis[(axis, models[0])] = _intervals(
            frame, points, store, coco, axis, anchor, args, models[0], evaluations)


def render_points(points, fmt: str) -> str:
    """The points table in a format: CSV long (one row per codec, quality, task, model) with
    every provenance column; the others wide (one row per codec and quality) with codec
    versions and model hashes listed under it."""
    from bench.report.points import is_ceiling, points_csv, wide, wide_columns
    from bench.report.tables import render

    if fmt == "csv":
        return points_csv(points)
    frame, task_columns = wide(points)
    text = render(frame, wide_columns(task_columns), fmt,
                  title=f"Rate and quality per point, {len(points.image_ids)} images",
                  label="tab:points", skip=[is_ceiling(c) for c in frame["codec"]])
    return text + "\n" + provenance(points, fmt)


def provenance(points, fmt: str) -> str:
    """Codec versions and task models as comment lines (LaTeX) or a list (text, Markdown)."""
    lead = "% " if fmt == "latex" else ("- " if fmt == "markdown" else "  ")
    out = ["% codec versions:" if fmt == "latex" else "\ncodec versions:"]
    out += [f"{lead}{c}: {v}" for c, v in points.versions.items()]
    models = [(t, i) for t in ("detection", "segmentation") for i in points.models(t).values()]
    if models:
        out.append("% task models:" if fmt == "latex" else "task models:")
        out += [f"{lead}{t}: {i['model']} sha256 {i['sha256']}" for t, i in models]
    return "\n".join(out)


def leaderboard_command(args: argparse.Namespace) -> str:
    """The ``bench report`` command line that reproduces a leaderboard (defaults left out)."""
    argv = ["bench", "report", "--run-dir", str(args.run_dir)]
    for name in args.codec or []:
        argv += ["--codec", name]
    for path in args.with_points or []:
        argv += ["--with-points", str(path)]
    for flag, value, default in (("--anchor", args.anchor, None), ("--method", args.method,
                                 "pchip"), ("--rate", args.rate, "pooled"),
                                 ("--images", args.images, "common"),
                                 ("--non-monotonic", args.non_monotonic, "pareto"),
                                 ("--data-root", args.data_root, None),
                                 ("--split", args.split, "val2017"),
                                 ("--bootstrap", getattr(args, "bootstrap", 0), 0),
                                 ("--bootstrap-seed", getattr(args, "bootstrap_seed", 0), 0),
                                 ("--coco-eval", getattr(args, "coco_eval", None), None)):
        if value is not None and value != default:
            argv += [flag, str(value)]
    return shlex.join(argv + ["--leaderboard", str(args.leaderboard)])


def _bd_text(points, metrics: list[str], anchor: str, args, store=None, coco=None,
             intervals=None, evaluations: dict | None = None) -> str:
    """The BD tables of ``metrics`` in ``args.format``, with provenance (not for CSV); the
    bootstrap's intervals also go into ``intervals`` (see :func:`bd_tables`)."""
    import pandas as pd

    from bench.report.bd import LOW_OVERLAP_MARK, bd_columns, low_overlap_legend
    from bench.report.bootstrap import without_interval_text
    from bench.report.tables import render, to_csv

    tables = bd_tables(points, metrics, anchor, args, store, coco, intervals, evaluations)
    if args.format == "csv":
        return to_csv(without_interval_text(pd.concat([f for _, f in tables],
                                                      ignore_index=True)))
    parts = []
    for i, (title, frame) in enumerate(tables):
        if (frame["rate_flag"] == LOW_OVERLAP_MARK).any() or (
                frame["metric_flag"] == LOW_OVERLAP_MARK).any():
            title += f"; {low_overlap_legend()}"
        parts.append(render(frame, bd_columns(frame["metric"].iloc[0], bool(args.bootstrap)),
                            args.format,
                            title=title, label=f"tab:bd-{frame['metric'].iloc[0]}-{i}"))
    return "\n\n".join(parts) + "\n" + provenance(points, args.format)


def _bootstrap_conflict(args: argparse.Namespace) -> str:
    """Why ``--bootstrap`` (or its options) cannot go with the other options, or ``""``."""
    if args.bootstrap < 0:
        return f"--bootstrap {args.bootstrap}: give a number of resamples (200 is usual), or 0"
    if not args.bootstrap:
        used = [flag for flag, value in (("--bootstrap-seed", args.bootstrap_seed != 0),
                                         ("--coco-eval", args.coco_eval)) if value]
        verb = "apply" if len(used) > 1 else "applies"
        return f"{' and '.join(used)} only {verb} with --bootstrap N" if used else ""
    if args.points:
        return "--bootstrap adds intervals to the BD table; --points prints the points table"
    if args.with_points:
        return ("--bootstrap with --with-points: a points file holds no per-image values to "
                "resample; run the codecs into one store")
    if args.images != "common":
        return "--bootstrap needs --images common: the resamples draw from one image set"
    return ""


def _html_dataset(args):
    """(CocoDataset or None, why not): the run's data set for the HTML gallery."""
    from bench.data.coco import CocoDataset

    try:
        return CocoDataset(args.data_root, args.split), ""
    except Exception as exc:  # no annotations here: the page goes without a gallery
        return None, f"{exc} (pass the run's --data-root)"


def _points(store, args: argparse.Namespace, coco):
    """The points of the store's codecs (``--codec``), plus those of ``--with-points``, and
    the labels taken from each points file (``[(path, labels)]``, for the leaderboard)."""
    from bench.report.points import (
        ReportError,
        build_points,
        latest_versions,
        reorder,
        with_points,
    )

    if not args.with_points:
        return build_points(store, codecs=args.codec, images=args.images, coco=coco), []
    codecs = args.codec
    if codecs is not None:
        stored = latest_versions(store)[0]
        codecs = [c for c in codecs if c in stored]
        if not codecs:
            raise ReportError(f"none of --codec {', '.join(args.codec)} is in {store.path} "
                              f"(it has: {', '.join(stored) or 'nothing'}); a report with "
                              "--with-points needs one of the run's codecs")
    points = build_points(store, codecs=codecs, images=args.images, coco=coco)
    measured = list(points.versions)
    imported = []
    for path in args.with_points:
        before = set(points.versions)
        points = with_points(points, path, codecs=args.codec, run_labels=measured)
        imported.append((str(path), [c for c in points.versions if c not in before]))
    missing = [c for c in args.codec or [] if c not in points.versions]
    if missing:
        raise ReportError(f"codec(s) {', '.join(missing)} neither in {store.path} nor in "
                          f"{', '.join(args.with_points)}")
    return (reorder(points, args.codec) if args.codec else points), imported


def main(args: argparse.Namespace) -> int:
    """Run ``bench report``; returns the exit status (0, or 2 on bad input)."""
    from bench.report.bd import DEFAULT_ANCHORS, default_anchor
    from bench.report.points import METRICS, LazyCoco, ReportError, coco_loader, metric_models
    from bench.store import DB_NAME, ResultsStore, StoreError

    db = Path(args.run_dir) / DB_NAME
    if not db.is_file():
        return _fail(f"no results store at {db}; run `bench run --run-dir {args.run_dir}` "
                     "first or pass --run-dir")
    if args.with_points and args.html:
        return _fail("--html with --with-points: the HTML report's gallery decodes every "
                     "codec's stored bitstreams, which a points file does not hold; drop one")
    why_not = _bootstrap_conflict(args)
    if why_not:
        return _fail(why_not)
    if args.with_points and args.images != "common":
        return _fail("--with-points needs --images common: a points file holds points over "
                     "one image set")
    images = None
    if args.html:
        from bench.report.gallery import parse_images

        try:
            images = parse_images(args.html_images)
        except ValueError as exc:
            return _fail(str(exc))
        if any(b <= 0 for b in args.html_bpp or []):
            return _fail("--html-bpp: a target rate must be positive")
    dataset, no_dataset = _html_dataset(args) if args.html and images != 0 else (None, "")
    coco = (LazyCoco(lambda: dataset.coco) if dataset is not None
            else coco_loader(args.data_root, args.split))
    try:
        store = ResultsStore(args.run_dir)
    except StoreError as exc:
        return _fail(str(exc))
    with store:
        try:
            points, imported = _points(store, args, coco)
        except (ReportError, StoreError, ValueError) as exc:
            return _fail(str(exc))
        for note in points.notes:
            print(f"bench report: {note}", file=sys.stderr)
        codecs = points.codecs()
        if args.anchor is not None and args.anchor not in codecs:
            return _fail(f"--anchor {args.anchor}: not among the codecs reported "
                         f"({', '.join(codecs)})")
        anchor = args.anchor or default_anchor(codecs)
        why = ""
        if anchor is None:
            why = (f"no default anchor ({', '.join(DEFAULT_ANCHORS)}) in the store; pass "
                   f"--anchor (codecs: {', '.join(codecs)})")
            if args.leaderboard or not (args.points or args.plot or args.html):
                return _fail(why)
        for key in args.metric or []:
            metric = METRICS[key]
            if not metric_models(points, metric):
                return _fail(f"--metric {key}: no {metric.task} scores in the store; run "
                             f"`bench run --task {metric.task}` first")
        metrics = list(dict.fromkeys(args.metric or ["psnr"]))

        text = None
        intervals = None
        evaluations: dict = {}  # the bootstrap's COCO evaluations, for every table it fills
        if args.bootstrap:
            from bench.report.bootstrap import Intervals

            intervals = Intervals(args.bootstrap, args.bootstrap_seed, {})
        if args.points:
            text = render_points(points, args.format)
        elif anchor is not None:
            try:
                text = _bd_text(points, metrics, anchor, args, store, coco, intervals,
                                evaluations)
            except ValueError as exc:
                return _fail(str(exc))
        else:
            if args.bootstrap:
                return _fail(f"--bootstrap: no BD table to add intervals to: {why}")
            print(f"bench report: no BD table: {why}", file=sys.stderr)
        if text is not None and args.output:
            Path(args.output).parent.mkdir(parents=True, exist_ok=True)
            Path(args.output).write_text(text.rstrip("\n") + "\n")
            print(f"bench report: wrote {args.output}", file=sys.stderr)
        elif text is not None:
            print(text.rstrip("\n"))

        if args.plot:
            from bench.report.plots import plot_all

            paths = plot_all(points, args.plot, rate=args.rate, metrics=args.metric,
                             style=args.plot_style)
            print(f"bench report: wrote {len(paths)} figure file(s) to {args.plot}",
                  file=sys.stderr)
        if args.html:
            from bench.report.html import write_html

            report = write_html(
                points, args.html, store=store, run_dir=args.run_dir, anchor=anchor,
                why_no_anchor=why, metrics=args.metric, method=args.method, rate=args.rate,
                policy=args.non_monotonic, intervals=intervals, dataset=dataset,
                dataset_error=no_dataset or "--html-images 0", images=images,
                targets=args.html_bpp, command=shlex.join(["bench", *getattr(
                    args, "argv", ["report", "--run-dir", str(args.run_dir), "--html",
                                   str(args.html)])]))
            for note in report.notes:
                print(f"bench report: {note}", file=sys.stderr)
            print(f"bench report: wrote {report.index} ({len(report.files)} files, "
                  f"{report.bytes / 1e6:.1f} MB)", file=sys.stderr)
        if args.leaderboard:
            from bench.report.leaderboard import write_leaderboard

            if intervals is not None:
                _leaderboard_intervals(points, store, coco, anchor, args, intervals,
                                       evaluations)
            paths = write_leaderboard(points, args.leaderboard, anchor=anchor,
                                      method=args.method, rate=args.rate,
                                      policy=args.non_monotonic,
                                      command=leaderboard_command(args),
                                      runs=store.command_records(), intervals=intervals,
                                      imported=imported)
            print(f"bench report: wrote {', '.join(map(str, paths))}", file=sys.stderr)
    return 0
