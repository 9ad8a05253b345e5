"""COCO AP with pycocotools' ``COCOeval``, over exactly the images of a run."""

from __future__ import annotations

import contextlib
import io
import warnings

#: The first six entries of ``COCOeval.stats``, in order.
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")
#: Evaluators: pycocotools (the reference) and faster-coco-eval (same numbers, C++ speed).
EVALUATORS = ("pycocotools", "faster-coco-eval")


def _evaluator_class(name: str):
    if name == "pycocotools":
        from pycocotools.cocoeval import COCOeval

        return COCOeval
    if name == "faster-coco-eval":
        try:
            from faster_coco_eval import COCOeval_faster
        except ImportError as exc:
            raise ValueError("evaluator faster-coco-eval needs `pip install "
                             "faster-coco-eval`; or use pycocotools") from exc
        return COCOeval_faster
    raise ValueError(f"unknown COCO evaluator {name!r}; choose from {', '.join(EVALUATORS)}")


def evaluate(coco_gt, results: list[dict], image_ids: list[int], iou_type: str,
             evaluator: str = "pycocotools") -> dict:
    """AP, AP50, AP75, AP small/medium/large (in percent) for ``results`` on ``image_ids``.

    ``coco_gt`` is a pycocotools ``COCO`` with the ground truth. A value pycocotools reports
    as -1 (no ground truth of that size) is NaN. With no detections at all a warning says so
    and the evaluation runs on an empty detection set (``loadRes`` cannot load an empty
    list): AP 0 where there is ground truth, NaN where there is none, as with detections.
    """
    cls = _evaluator_class(evaluator)
    if iou_type not in ("bbox", "segm"):
        raise ValueError(f"iou_type must be 'bbox' or 'segm', got {iou_type!r}")
    if not results:
        warnings.warn(f"no detections on {len(image_ids)} images: {iou_type} AP is 0 where "
                      "there is ground truth", stacklevel=2)
        return _summarize(cls, coco_gt, _no_detections(coco_gt), image_ids, iou_type)
    # Like detectron2: segm results lose their box so pycocotools takes the detection's area
    # from the mask; bbox results lose their mask so the area is the box's. The dicts are
    # fresh copies, so loadRes may add its keys without touching the caller's results.
    drop = "bbox" if iou_type == "segm" else "segmentation"
    results = [{k: v for k, v in r.items() if k != drop} for r in results
               if iou_type != "segm" or "segmentation" in r]
    if not results:
        raise ValueError("segm evaluation needs results with masks; this model gave none")
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(results)
    return _summarize(cls, coco_gt, coco_dt, image_ids, iou_type)


def _summarize(cls, coco_gt, coco_dt, image_ids: list[int], iou_type: str) -> dict:
    """The first six COCO stats of ``coco_dt`` against ``coco_gt``, in percent (-1: NaN)."""
    with contextlib.redirect_stdout(io.StringIO()):
        ev = cls(coco_gt, coco_dt, iou_type)
        ev.params.imgIds = sorted(image_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {name: (float("nan") if v < 0 else 100.0 * float(v))
            for name, v in zip(STAT_NAMES, ev.stats[:6], strict=True)}


def _no_detections(coco_gt):
    """A detection set with no detections, for the ground truth's images and categories."""
    from pycocotools.coco import COCO

    coco_dt = COCO()
    coco_dt.dataset = {"images": list(coco_gt.dataset["images"]), "annotations": [],
                       "categories": [dict(c) for c in coco_gt.dataset["categories"]]}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt.createIndex()
    return coco_dt
