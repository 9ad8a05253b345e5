"""What the regression gate measures: the CI subset coded and scored through the pipeline.

``bench check`` re-runs a small fixed subset (:data:`bench.report.check.CI_SUBSET`) and
compares it with the committed baseline. The comparing, the baseline file and the
environment fingerprint live in :mod:`bench.report.check`; the coding and scoring live
here and go through :class:`bench.pipeline.Pipeline`, exactly as ``bench run`` does (the
detector predicts where each reconstruction is decoded), so the gate checks the path users
run, with either executor.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.report import check


def is_deterministic(codec, sample, quality: str) -> bool:
    """Whether the codec gives identical bytes when it codes the same image twice."""
    one = codec.encode_source(sample.image, sample.roi, quality, sample.source)
    two = codec.encode_source(sample.image, sample.roi, quality, sample.source)
    return one == two


def measure(image_ids: Sequence[int] | int, qualities: dict[str, Sequence[str]], *,
            data_root: str | Path, model: Path | None, split: str = "val2017",
            run_dir: str | Path | None = None, jobs: int = 1, executor: str = "local",
            ray_address: str | None = None, log: Callable[[str], None] = lambda s: None,
            probe_determinism: bool = False) -> dict:
    """Code the subset and score it; returns the baseline's ``codecs`` and ``task`` parts.

    ``image_ids`` is a list of ids, or a count (the first N ids of the split). Codecs that
    are unavailable here are returned under ``"skipped"`` with the reason. ``executor``,
    ``ray_address`` and ``jobs`` are those of ``bench run``.
    """
    if run_dir is None:
        with tempfile.TemporaryDirectory(prefix="bench-check-") as tmp:
            return measure(image_ids, qualities, data_root=data_root, model=model,
                           split=split, run_dir=tmp, jobs=jobs, executor=executor,
                           ray_address=ray_address, log=log,
                           probe_determinism=probe_determinism)
    from bench.data.coco import CocoDataset
    from bench.pipeline import Pipeline
    from bench.registry import CODECS, TASKS
    from bench.store import ResultsStore

    if isinstance(image_ids, int):
        dataset = CocoDataset(data_root, split, limit=image_ids)
    else:
        dataset = CocoDataset(data_root, split, image_ids=list(image_ids))
        missing = sorted(set(image_ids) - set(dataset.ids))
        if missing:
            raise check.CheckError(
                f"image(s) {missing} of the subset are not in {dataset.root}; point "
                "--data-root (or $BENCH_DATA_ROOT) at the shared COCO set")
    codecs, skipped = {}, {}
    for name in qualities:
        try:
            codec = CODECS.create(name)
        except Exception as exc:  # uninstalled plugin or broken import: skip, say why
            skipped[name] = f"cannot load: {exc}"
            continue
        reason = codec.availability()
        if reason is not None:
            skipped[name] = f"unavailable: {reason}"
            continue
        codecs[name] = codec
    grids = {n: tuple(c.qualities) for n, c in codecs.items()}
    off = {n: [q for q in qualities[n] if q not in grids[n]] for n in codecs}
    wanted = {n: tuple(q for q in qualities[n] if q in grids[n]) for n in codecs}
    task = None
    if model is not None:
        if not Path(model).is_file():
            raise check.CheckError(f"model {model} not found; pass --models-dir or set "
                                   "$BENCH_MODELS_DIR")
        task = TASKS.create(check.CI_SUBSET["task"], model=str(model))
        task.check_categories(dataset.coco.dataset["categories"])
    tasks = [task] if task is not None else []
    with ResultsStore(run_dir) as store:
        pipeline = Pipeline(store, dataset, codecs, wanted, run_dir=str(run_dir), tasks=tasks,
                            task_models={t.name: str(model) for t in tasks},
                            metrics=("psnr",))
        units = pipeline.plan()
        log(f"coding {sum(len(u.qualities) for u in units)} image(s) with "
            f"{len(codecs)} codec(s)" + (" and detection" if task is not None else ""))
        try:
            pipeline.code(units, jobs=jobs, executor=executor, ray_address=ray_address)
        except RuntimeError as exc:  # Ray missing or the cluster unreachable
            raise check.CheckError(str(exc)) from exc
        for t in tasks:  # rows whose worker could not load the model
            todo = pipeline.missing_predictions(t)
            if todo:
                log(f"{t.name} on {len(todo)} stored reconstruction(s)")
                pipeline.predict(t, todo)
        first = dataset.load(dataset.ids[0]) if probe_determinism else None
        out: dict = {}
        for name, codec in codecs.items():
            entry = {"version": codec.version(), "grid": list(grids[name]), "cells": {},
                     "off_grid": off[name], "cpu_exact": bool(getattr(codec, "cpu_exact",
                                                                      True))}
            if first is not None and wanted[name]:
                entry["deterministic"] = is_deterministic(codec, first, wanted[name][0])
            for q in wanted[name]:
                rows = store.results(name, entry["version"], [q], dataset.ids)
                entry["cells"][q] = check.cell_of(rows, len(dataset.ids))
                if task is not None:
                    res = pipeline.score(task, name, q)
                    # images the detector scored (failed or missing predictions drop out
                    # of the AP, so the gate fails on them: compare's task_images)
                    entry["cells"][q]["task_images"] = int(res.get("images", 0))
                    for key, iou, stat in check.TASK_STATS:
                        entry["cells"][q][key] = float(res.get(iou, {}).get(stat, math.nan))
            out[name] = entry
    task_info = None
    if task is not None:
        info = task.model_info()
        task_info = {"name": task.name, "model": info["model"], "sha256": info["sha256"]}
    return {"image_ids": list(dataset.ids), "codecs": out, "skipped": skipped,
            "task": task_info, "environment": check.environment_fingerprint()}
