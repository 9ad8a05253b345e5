"""``bench run``: code COCO images with one or more codecs and print a summary table.

Results go to an SQLite store in the run directory, one committed row per (codec, codec
version, quality, image). Running the same command again computes only what is missing.
The store also keeps each command line and the machine (CPU, package versions) it ran on,
which `bench report` prints as provenance.
A codec run with non-default options is labelled name@key-value (e.g. `--roi none` makes
ggm@roi-none, `--roi pred` ggm@roi-pred): the table and `bench report` show it as its own
codec. With `--roi pred` a segmentation model finds the ROI on the original image before
encoding; its masks are cached in RUN_DIR/roi and every codec and later run reuses them.

Exit status: 0 when every row and task prediction asked for is stored without error; 1 when
some failed (they are stored as errors and listed; fix the cause and rerun with
--retry-errors) or a codec is unavailable here; 2 on bad input, before any work.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from bench.cli.executor_options import add_executor_options, executor_problem


def register(sub) -> None:
    from bench.cli.codecs_cmd import add_vtm_dir
    from bench.roi_pred import DEFAULT_DILATE as _ROI_DILATE
    from bench.roi_pred import DEFAULT_SCORE as _ROI_SCORE

    p = sub.add_parser(
        "run",
        help="code images with codecs and store per-image results",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--codec", action="append", required=True, metavar="NAME",
                   help="codec to run (repeatable); `bench codecs` lists them")
    p.add_argument("--quality", action="append", metavar="Q",
                   help="quality point to run (repeatable), plain `q50` for every codec whose "
                   "grid has it or `codec:q50` (codec name or label; every --codec needs "
                   "one); default: each codec's whole grid")
    p.add_argument("--data-root", default=None,
                   help="COCO root (default: $BENCH_DATA_ROOT, else ~/.cache/bench/coco)")
    p.add_argument("--split", default="val2017", help="COCO split (default: val2017)")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="only the first N images (in ascending image-id order)")
    p.add_argument("--image-ids", default=None, metavar="ID,ID,…",
                   help="only these image ids (comma-separated)")
    add_executor_options(p)
    p.add_argument("--ship-images", action="store_true",
                   help="send each image from this process to the workers (for clusters "
                   "without the data root on shared storage; default: workers read it)")
    p.add_argument("--run-dir", default="runs/default",
                   help="directory of the results store (default: runs/default)")
    p.add_argument("--force", action="store_true", help="recompute rows already stored")
    p.add_argument("--retry-errors", action="store_true",
                   help="recompute rows stored as errors (others are kept)")
    p.add_argument("--keep-recon", action="store_true",
                   help="keep decoded images as PNG under RUN_DIR/recon for later task scoring")
    p.add_argument("--roi", choices=["gt", "pred", "none"], default="gt",
                   help="what ROI-aware codecs (ggm, gaussian-roi) get at encode time: gt, the "
                   "union of the image's instance masks (default); pred, the union of the "
                   "masks an instance-segmentation model predicts on the original image "
                   "(labelled CODEC@roi-pred; see --roi-model); or none, uniform quality "
                   "(labelled CODEC@roi-none); other codecs ignore it. ROI and background PSNR "
                   "always use the gt mask")
    p.add_argument("--roi-method", choices=["blur", "qp"], default=None,
                   help="give codecs that do not code an ROI themselves (jpeg, hevc, vvc, …, "
                   "third-party ones too) the ROI. blur: background simplification, for every "
                   "codec: the ROI (+23 px) is kept, the rest blurred before encoding, "
                   "sigma 8 px at the lowest-rate grid point down to 1 px at the highest "
                   "(points named e.g. q50-b2). qp: the encoder's own spatial rate control, "
                   "for codecs whose encoder has one (hevc: x265 codes the background 16 QP "
                   "above the ROI's 32x32 blocks; points named e.g. qp37-d16). Labelled "
                   "CODEC@roi-gt-METHOD / CODEC@roi-pred-METHOD. Default: they code uniformly")
    p.add_argument("--roi-qp-delta", type=int, default=None, metavar="QP",
                   help="--roi-method qp: how many QPs above the ROI the background is coded "
                   "(default: the codec's own, 16 for hevc); another value names the points "
                   "e.g. qp37-d8 and labels the run CODEC@roi-gt-qp@roi_qp_delta-8")
    p.add_argument("--roi-model", default=None, metavar="PATH_OR_NAME",
                   help="--roi pred: the segmentation model that finds the ROI (default: the "
                   "segmentation task's model, i.e. --model segmentation=… if given, else "
                   "yolo11n-seg.pt); its predictions are cached in RUN_DIR/roi and reused")
    p.add_argument("--roi-score", type=float, default=None, metavar="S",
                   help="--roi pred: minimum score of a predicted instance (default "
                   f"{_ROI_SCORE}, chosen with benchmarks/roi_pred.py)")
    p.add_argument("--roi-dilate", type=int, default=None, metavar="PX",
                   help="--roi pred: grow the predicted ROI by this many pixels (default "
                   f"{_ROI_DILATE})")
    p.add_argument("--metrics", default="psnr,ms-ssim",
                   help="image metrics: psnr (PSNR, ROI-PSNR, background PSNR; always on) and "
                   "ms-ssim (default: psnr,ms-ssim)")
    p.add_argument("--task", action="append", metavar="TASK",
                   help="score reconstructions with a task (repeatable): detection, "
                   "segmentation (see entry points `bench.tasks`)")
    p.add_argument("--model", action="append", metavar="[TASK=]PATH_OR_NAME",
                   help="task model: a local .pt/.onnx/.tflite file, or a released name "
                   "Ultralytics downloads (default: yolov8n.pt for detection, yolo11n-seg.pt "
                   "for segmentation); `detection=PATH` picks the task")
    p.add_argument("--coco-eval", default="pycocotools",
                   choices=["pycocotools", "faster-coco-eval"],
                   help="COCO evaluator: pycocotools (the reference, default) or "
                   "faster-coco-eval (same numbers, several times faster)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_vtm_dir(p)
    p.set_defaults(func=main)


def _fail(message: str) -> int:
    print(f"bench run: error: {message}", file=sys.stderr)
    return 2


def parse_ids(text: str | None) -> list[int] | None:
    """``"1,2, 3"`` → ``[1, 2, 3]``; raises ValueError naming the bad item."""
    if not text:
        return None
    out = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if not item.isdigit():
            raise ValueError(f"--image-ids: {item!r} is not an image id (a whole number)")
        out.append(int(item))
    return out


def select_qualities(codecs: dict, wanted: list[str] | None) -> dict[str, tuple[str, ...]]:
    """Each codec's qualities to run, in grid order; ValueError for a quality no codec has,
    or a codec none of the qualities applies to (it would be left out of the run unsaid).

    ``codecs`` is keyed by label; ``codec:q`` items name a codec by its name or label.
    """
    from bench.labels import codec_name

    if not wanted:
        return {name: tuple(c.qualities) for name, c in codecs.items()}
    per: dict[str, set[str]] = {name: set() for name in codecs}
    for item in wanted:
        name, _, q = item.rpartition(":")
        targets = [t for t in codecs if name in (t, codec_name(t))] if name else list(codecs)
        if not targets:
            raise ValueError(f"--quality {item}: codec {name!r} is not among --codec")
        hits = [t for t in targets if q in codecs[t].qualities]
        if not hits:
            grids = "; ".join(f"{t}: {', '.join(codecs[t].qualities)}" for t in targets)
            raise ValueError(f"--quality {item}: no such quality ({grids})")
        for t in hits:
            per[t].add(q)
    for name, chosen in per.items():
        if not chosen:
            raise ValueError(f"--codec {name}: no --quality given is in its grid "
                             f"({', '.join(codecs[name].qualities)}); add --quality "
                             f"{name}:Q for one of them, or leave --codec {name} out")
    return {n: tuple(q for q in codecs[n].qualities if q in per[n]) for n in codecs}


def model_specs(tasks: list[str], models: list[str] | None) -> dict[str, str | None]:
    """Each task's model spec from ``--model`` items (``PATH`` or ``task=PATH``)."""
    specs: dict[str, str | None] = dict.fromkeys(tasks)
    for item in models or []:
        name, sep, path = item.partition("=")
        if sep and name in specs:
            specs[name] = path
        elif sep and not ("/" in name or "." in name):
            raise ValueError(f"--model {item}: task {name!r} is not among --task")
        else:
            if len(tasks) != 1:
                raise ValueError(f"--model {item}: with several tasks, say which one "
                                 "(e.g. --model detection=PATH)")
            specs[tasks[0]] = item
    return specs


def build_tasks(task_names: list[str], specs: dict[str, str | None], categories: list[dict]):
    """Instantiate and check each task's model (``specs``: :func:`model_specs`) before any
    coding starts."""
    from bench.registry import TASKS

    tasks = []
    for name in task_names:
        task = TASKS.create(name, model=specs[name])
        task.check_categories(categories)
        tasks.append(task)
    return tasks


def roi_predictor(args: argparse.Namespace, task_names: list[str]):
    """The ROI model of ``--roi pred`` (loaded once, here), or None for other ROI modes."""
    if args.roi_method is not None and args.roi == "none":
        raise ValueError("--roi-method needs an ROI: use it with --roi gt or --roi pred")
    given = [f for f, v in (("--roi-model", args.roi_model), ("--roi-score", args.roi_score),
                            ("--roi-dilate", args.roi_dilate)) if v is not None]
    if args.roi != "pred":
        if given:
            raise ValueError(f"{', '.join(given)} only apply with --roi pred")
        return None
    from bench.roi_pred import DEFAULT_DILATE, DEFAULT_SCORE, RoiPredictor, check_settings
    from bench.tasks.segmentation import SegmentationTask

    score = DEFAULT_SCORE if args.roi_score is None else args.roi_score
    pixels = DEFAULT_DILATE if args.roi_dilate is None else args.roi_dilate
    check_settings(score, pixels)
    model = args.roi_model
    if model is None:
        specs = model_specs(task_names, args.model) if task_names else {}
        model = specs.get("segmentation") or SegmentationTask.default_model
    return RoiPredictor(model, score, pixels)  # TaskError names the model when it fails


def qp_delta_option(args: argparse.Namespace, cls: type) -> dict[str, int]:
    """The constructor option ``--roi-qp-delta`` gives codec class ``cls`` (none when it is
    not given or equals the codec's default); a ValueError when the codec cannot take it."""
    from bench.labels import option_defaults

    if args.roi_qp_delta is None or "qp" not in getattr(cls, "roi_methods", ()):
        return {}  # a codec without the qp method is refused when it is created
    default = option_defaults(cls).get("roi_qp_delta")
    if default is None:
        raise ValueError("its qp ROI method takes no background offset (--roi-qp-delta)")
    return {} if args.roi_qp_delta == default else {"roi_qp_delta": args.roi_qp_delta}


def pred_label(name: str, predictor, roi_text: str = "pred", extra: dict | None = None) -> str:
    """``name@roi-pred`` (``roi_text``), plus the ROI settings that differ from their
    defaults and the codec's ``extra`` (non-default) options."""
    from bench.labels import codec_label
    from bench.roi_pred import DEFAULT_DILATE, DEFAULT_SCORE

    return codec_label(name, {"roi": roi_text, "roi_score": predictor.score,
                              "roi_dilate": predictor.pixels, **(extra or {})},
                       {"roi": "gt", "roi_score": DEFAULT_SCORE, "roi_dilate": DEFAULT_DILATE})


def predict_rois(predictor, args: argparse.Namespace, dataset, units) -> None:
    """Predict (once per run directory) the ROI of every image some unit will code."""
    from bench.roi_pred import RoiCache, predict_missing
    from bench.runner import progress_bar

    cache = RoiCache(args.run_dir, predictor.key)
    ids = list(dict.fromkeys(u.image_id for u in units))
    with progress_bar(len(ids), "ROI model", disable=args.no_progress) as bar:
        computed, reused, seconds = predict_missing(cache, predictor, dataset, ids, bar.update)
    line = f"predicted ROI ({predictor.key}): {computed} image(s) computed"
    if seconds:
        line += f" in {sum(seconds) / len(seconds):.3f} s each on average (not in encode times)"
    print(f"{line}, {reused} reused from {cache.folder}", file=sys.stderr)


def load_line(loads: dict[str, list[float]]) -> str:
    """One line on the codecs' load times of this invocation, which no encode time includes.

    ``loads`` maps a codec label to the ``load_s`` of each worker process that loaded it
    (empty when every load failed: the error rows say why).
    """
    parts = []
    for label, seconds in loads.items():
        per = f"{max(seconds):.2f} s" if len(seconds) == 1 else (
            f"{min(seconds):.2f}–{max(seconds):.2f} s in each of {len(seconds)} workers")
        parts.append(f"{label} {per}")
    return "codec load and warm-up (not in the encode times): " + ", ".join(parts)


def main(args: argparse.Namespace) -> int:
    from bench.cli.codecs_cmd import apply_vtm_dir, vtm_options
    from bench.data.coco import CocoDataset, DataError
    from bench.labels import codec_label, option_defaults
    from bench.pipeline import Pipeline
    from bench.registry import CODECS, UnknownPluginError, create_codec
    from bench.roi_pred import RoiError
    from bench.runner import ALL_METRICS, progress_bar
    from bench.store import ResultsStore, StoreError
    from bench.summary import format_table, summarize
    from bench.tasks import TaskError

    problem = apply_vtm_dir(args)
    if problem:
        return _fail(problem)
    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    bad = [m for m in metrics if m not in ALL_METRICS]
    if bad:
        return _fail(f"--metrics: unknown {', '.join(bad)} (known: {', '.join(ALL_METRICS)})")
    problem = executor_problem(args)
    if problem:
        return _fail(problem)
    if args.ship_images and args.executor != "ray":
        return _fail("--ship-images is for --executor ray (local workers read the data root)")
    if args.ship_images and args.roi == "pred":
        return _fail("--ship-images with --roi pred is not supported yet: the predicted ROIs "
                     "are cached in RUN_DIR, which cluster workers do not see")
    try:
        dataset = CocoDataset(args.data_root, args.split, image_ids=parse_ids(args.image_ids),
                              limit=args.limit)
    except (DataError, ValueError) as exc:
        return _fail(str(exc))

    if args.roi_qp_delta is not None and args.roi_method != "qp":
        return _fail("--roi-qp-delta sets the background offset of --roi-method qp; add "
                     "--roi-method qp or drop it")
    task_names = list(dict.fromkeys(args.task or []))
    try:
        predictor = roi_predictor(args, task_names)
    except (TaskError, ValueError) as exc:
        return _fail(str(exc))

    codecs, unavailable, options = {}, [], {}  # codecs and options keyed by label
    for name in dict.fromkeys(args.codec):
        try:
            cls = CODECS.get(name)
            extra = vtm_options(args, name)
            extra.update(qp_delta_option(args, cls))
            opts, shown = dict(extra), dict(extra)  # constructor options, label options
            if cls.uses_roi:
                opts["roi"] = shown["roi"] = args.roi
            elif args.roi_method is not None:  # the background pre-filter
                opts["roi_method"] = args.roi_method
                shown["roi"] = f"{args.roi}-{args.roi_method}"
            label = codec_label(name, shown, option_defaults(cls))
            if predictor is not None and (cls.uses_roi or args.roi_method is not None):
                opts["roi_source"] = predictor.key  # the codec encodes the predicted ROI
                roi_text = "pred" if cls.uses_roi else f"pred-{args.roi_method}"
                label = pred_label(name, predictor, roi_text, extra)
            codec = create_codec(name, **opts)
        except UnknownPluginError as exc:
            return _fail(str(exc))
        except (TypeError, ValueError) as exc:
            return _fail(f"codec {name}: {exc}")
        reason = codec.availability()
        if reason is not None:
            unavailable.append(name)
            print(f"bench run: codec {label} is unavailable here ({reason}); skipping it",
                  file=sys.stderr)
            continue
        codecs[label], options[label] = codec, opts
    try:
        qualities = select_qualities(codecs, args.quality)
    except ValueError as exc:
        return _fail(str(exc))
    codecs = {n: c for n, c in codecs.items() if n in qualities}
    if args.model and not task_names:
        return _fail("--model needs --task")
    try:
        specs = model_specs(task_names, args.model)
        tasks = build_tasks(task_names, specs, dataset.coco.dataset["categories"])
    except (TaskError, UnknownPluginError, ValueError) as exc:
        return _fail(str(exc))

    try:
        store = ResultsStore(args.run_dir)
    except StoreError as exc:
        return _fail(str(exc))
    with store:
        if getattr(args, "argv", None) is not None:  # provenance for `bench report`
            from bench.report.check import environment_fingerprint

            # the machine is this process's: with --executor ray, workers may be others
            store.add_command(shlex.join(["bench", *args.argv]),
                              machine=environment_fingerprint())
        pipeline = Pipeline(store, dataset, codecs, qualities, run_dir=str(args.run_dir),
                            tasks=tasks, task_models=specs, metrics=metrics,
                            codec_options=options, keep_recon=args.keep_recon,
                            ship_images=args.ship_images)
        try:
            units = pipeline.plan(force=args.force, retry_errors=args.retry_errors)
        except StoreError as exc:
            return _fail(str(exc))
        todo = sum(len(u.qualities) for u in units)
        total = sum(len(q) for q in qualities.values()) * len(dataset)
        print(f"{len(dataset)} images × {len(codecs)} codec(s): {total - todo} of {total} rows "
              f"already in {store.path}, {todo} to compute", file=sys.stderr)
        pred_units = [u for u in units if "roi_source" in options[u.label]]
        if pred_units:
            try:
                predict_rois(predictor, args, dataset, pred_units)
            except RoiError as exc:
                return _fail(f"{exc} (the ROIs predicted before it are cached; rerun to go on)")
        if units:
            bar = progress_bar(todo, "coding", disable=args.no_progress)
            loads: dict[str, list[float]] = {}

            def on_row(row) -> None:
                bar.update()
                if row.load_s is not None:
                    loads.setdefault(row.label, []).append(row.load_s)

            with bar:
                try:  # the workers predict on each reconstruction they decode
                    pipeline.code(units, jobs=args.jobs, executor=args.executor,
                                  ray_address=args.ray_address, on_row=on_row)
                except RuntimeError as exc:  # e.g. Ray missing or the cluster unreachable
                    return _fail(f"{exc} (rows computed so far are stored; rerun to go on)")
            if loads:
                print(load_line(loads), file=sys.stderr)
        rows = pipeline.rows()
        summaries = summarize(rows, list(codecs), qualities)
        columns, task_failures = score_tasks(pipeline, summaries, args)
    print(format_table(summaries, columns))
    errors = [r for r in rows if not r.ok]
    if errors:
        print(f"\n{len(errors)} row(s) failed; the first ones:", file=sys.stderr)
        for r in errors[:5]:
            print(f"  {r.label} {r.quality} image {r.image_id}: {r.error}", file=sys.stderr)
        print("fix the cause and rerun with --retry-errors to recompute them", file=sys.stderr)
    return 1 if unavailable or errors or task_failures else 0


def score_tasks(pipeline, summaries, args) -> tuple[list, int]:
    """Predict where missing, then add each task's AP columns to the summaries; returns the
    columns and how many (image, codec, quality) predictions failed."""
    from bench.runner import progress_bar
    from bench.scoring import summary_values

    columns, failures = [], 0
    for task in pipeline.tasks:
        todo = pipeline.missing_predictions(task, force=args.force,
                                            retry_errors=args.retry_errors)
        if todo:
            with progress_bar(len(todo), task.name, disable=args.no_progress) as bar:
                pipeline.predict(task, todo, on_done=bar.update)
        for s in summaries:
            result = pipeline.score(task, s.label, s.quality, args.coco_eval)
            s.extra.update(summary_values(task, result))
            if result.get("errors"):
                failures += result["errors"]
                print(f"bench run: {task.name} failed on {result['errors']} image(s) of "
                      f"{s.label} {s.quality}; rerun with --retry-errors after fixing",
                      file=sys.stderr)
        columns += [(col, head) for col, head, _, _ in task.summary_columns]
    return columns, failures
