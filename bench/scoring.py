"""Task scoring of stored reconstructions: predictions per image, then COCO AP per quality.

Reconstructions come from ``--keep-recon`` PNGs where they exist and were decoded from the
row's own bitstream (:func:`bench.runner.kept_recon`), else from re-decoding the stored
bitstream: a task never re-encodes. Predictions are cached per (codec, version,
quality, image, task, model key) and committed one image at a time, so re-scoring after a
crash continues where it stopped. COCO scores are cached under a digest of exactly the
predictions they were computed from.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence

from bench.labels import codec_name
from bench.runner import describe_error, kept_recon
from bench.store import ImageResult, ResultsStore
from bench.tasks.cocoeval import evaluate


def missing_predictions(store: ResultsStore, task, codecs: dict,
                        qualities: dict[str, Sequence[str]], image_ids: Sequence[int], *,
                        force: bool = False, retry_errors: bool = False) -> list[ImageResult]:
    """Stored, successful coding rows that have no predictions for the task's model yet.

    ``codecs`` and ``qualities`` are keyed by label (:mod:`bench.labels`).
    """
    key = task.model_key()
    todo = []
    for label, codec in codecs.items():
        name, version = codec_name(label), codec.version()
        have = set() if force else store.predicted(name, version, task.name, key,
                                                   with_errors=not retry_errors)
        todo += [r for r in store.results(name, version, qualities[label], image_ids)
                 if r.ok and (r.quality, r.image_id) not in have]
    return todo


def predict_image(task, image, image_id: int) -> tuple[list[dict] | None, str | None,
                                                       float | None]:
    """``(results, error, seconds)`` of ``task`` on one image: a failure becomes the error
    text (stored as the prediction's error), never a crash. Used by the workers that
    predict where they decode (:mod:`bench.runner`) and by :func:`predict_rows`."""
    try:
        t0 = time.perf_counter()
        results = task.predict(image, image_id)
        return results, None, time.perf_counter() - t0
    except Exception as exc:  # one failing image becomes an error, not a crash
        return None, describe_error(exc), None


def predict_rows(store: ResultsStore, task, codecs: dict, rows: Sequence[ImageResult], run_dir,
                 on_done: Callable[[], None] | None = None) -> None:
    """Predict on each row's reconstruction and commit the results one image at a time.

    ``codecs`` is keyed by label; a row without a kept reconstruction is decoded by its
    label's codec.
    """
    key = task.model_key()
    store.put_model(key, task.model_info())
    for row in rows:
        try:
            recon = kept_recon(run_dir, row)
            if recon is None:
                data = store.bitstream(row.codec, row.codec_version, row.quality, row.image_id)
                recon = codecs[row.label].decode(data)
        except Exception as exc:  # an image that cannot be decoded becomes an error
            results, error, seconds = None, describe_error(exc), None
        else:
            results, error, seconds = predict_image(task, recon, row.image_id)
        store.put_prediction(row.key, task.name, key, results, error, seconds)
        if on_done is not None:
            on_done()


def score(store: ResultsStore, coco_gt, task, codec: str, version: str, quality: str,
          image_ids: Sequence[int], evaluator: str = "pycocotools") -> dict:
    """COCO AP per IoU type for one (codec, quality), over the run's images with predictions.

    Returns ``{"images": n, "errors": k, "<iou_type>": {AP, AP50, …}}``; cached in the store.
    """
    key = task.model_key()
    ok, bad = store.predictions(codec, version, quality, task.name, key, image_ids)
    out: dict = {"images": len(ok), "errors": len(bad)}
    if not ok:
        return out
    ids = sorted(ok)
    text = evaluator + "\n" + "\n".join(f"{i}:{ok[i]}" for i in ids)
    digest = hashlib.sha256(text.encode()).hexdigest()
    results = None
    for iou_type in task.iou_types:
        skey = (codec, version, quality, task.name, key, iou_type)
        stats = store.cached_score(skey, digest)
        if stats is None:
            if results is None:
                results = [r for i in ids for r in json.loads(ok[i])]
            stats = evaluate(coco_gt, results, ids, iou_type, evaluator)
            store.put_score(skey, digest, len(ids), stats)
        out[iou_type] = stats
    return out


def summary_values(task, result: dict) -> dict[str, float]:
    """The summary-table cells of one task score (NaN where nothing could be scored)."""
    return {col: float(result.get(iou, {}).get(stat, math.nan))
            for col, _, iou, stat in task.summary_columns}
