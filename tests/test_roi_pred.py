"""``--roi pred``: the ROI a segmentation model finds at the encoder, on real shared images
with the shared int8 segmenter; cached once per run directory and named in the version."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pandas as pd
import pytest

from bench.cli import main
from bench.data.coco import CocoDataset
from bench.registry import create_codec
from bench.roi_pred import RoiCache, RoiPredictor, dilate
from bench.store import ResultsStore
from tests.conftest import SEGMENTER, shared_model


def test_dilate_grows_by_a_disk():
    mask = np.zeros((21, 21), bool)
    mask[10, 10] = True
    grown = dilate(mask, 3)
    assert grown.sum() == 29  # lattice points within distance 3 of a point
    assert grown[10, 7] and grown[10, 13] and not grown[7, 7]
    assert dilate(mask, 0).sum() == 1 and not dilate(np.zeros((4, 4), bool), 5).any()


def test_predicted_roi_overlaps_the_gt_roi(coco_root):
    predictor = RoiPredictor(str(shared_model(SEGMENTER)))
    samples = [s for s in CocoDataset(coco_root, "val2017", limit=12) if s.roi is not None][:6]
    inter = union = 0
    for s in samples:
        pred = predictor.predict(s.image)
        assert pred.mask.shape == s.roi.shape and pred.mask.dtype == bool
        assert pred.seconds > 0 and pred.instances >= 0
        inter += int((pred.mask & s.roi).sum())
        union += int((pred.mask | s.roi).sum())
    iou = inter / union
    print(f"pooled IoU of the predicted and GT ROI on {len(samples)} images: {iou:.3f}")
    assert iou > 0.4  # loose: an int8 nano segmenter on a handful of images
    assert predictor.key == "yolo11n-seg_full_integer_quant-1f99366c11ed-s0.1-d4"


def test_gt_and_pred_versions_differ():
    gt, pred = create_codec("ggm"), create_codec("ggm", roi="pred", roi_source="m-abc-s0.25-d4")
    assert gt.version() != pred.version()
    assert "/roi-pred-m-abc-s0.25-d4/" in pred.version()
    other = create_codec("ggm", roi="pred", roi_source="m-abc-s0.5-d4")
    assert other.version() != pred.version()
    with pytest.raises(ValueError, match="roi_source"):
        create_codec("ggm", roi="pred")
    with pytest.raises(ValueError, match="roi_source"):
        create_codec("ggm", roi_source="m-abc-s0.25-d4")


def test_roi_options_need_roi_pred(coco_root, capsys):
    assert main(["run", "--codec", "ggm", "--limit", "1", "--data-root", str(coco_root),
                 "--roi-score", "0.5"]) == 2
    assert "--roi-score only apply with --roi pred" in capsys.readouterr().err
    assert main(["run", "--codec", "ggm", "--limit", "1", "--data-root", str(coco_root),
                 "--roi", "pred", "--roi-model", str(shared_model(SEGMENTER)),
                 "--roi-score", "1.5"]) == 2
    assert "--roi-score must be in (0, 1]" in capsys.readouterr().err


def test_roi_model_runs_once_per_image_for_two_codecs(coco_root, tmp_path, capsys):
    """Two ROI codecs, then a second run with another grid point: the model predicts each
    image once; the codecs encode exactly the cached mask; reports tell gt from pred."""
    seg = str(shared_model(SEGMENTER))
    rd = tmp_path / "run"
    common = ["run", "--no-progress", "--codec", "ggm", "--codec", "gaussian-roi", "--limit",
              "2", "--metrics", "psnr", "--data-root", str(coco_root), "--run-dir", str(rd)]
    assert main([*common, "--roi", "pred", "--roi-model", seg, "--quality", "q2"]) == 0
    err = capsys.readouterr().err
    assert "2 image(s) computed" in err and "0 reused" in err
    (folder,) = (rd / "roi").iterdir()
    assert sorted(p.suffix for p in folder.iterdir()) == [".json", ".json", ".png", ".png"]
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert main([*common, "--roi", "pred", "--roi-model", seg, "--quality", "q6"]) == 0
    err = capsys.readouterr().err
    assert "0 image(s) computed" in err and "2 reused" in err
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps
    assert main([*common, "--roi", "gt", "--quality", "q2"]) == 0
    capsys.readouterr()

    cache = RoiCache(rd, folder.name)
    data = CocoDataset(coco_root, "val2017", limit=2)
    with ResultsStore(rd) as store:
        rows = store.results(label="ggm@roi-pred")
    assert {(r.quality, r.image_id) for r in rows} == {(q, i) for q in ("q2", "q6")
                                                       for i in data.ids}
    assert all("roi-pred-" + folder.name in r.codec_version for r in rows)
    codec = create_codec("ggm", roi="pred", roi_source=folder.name)
    for r in rows:
        sample = data.load(r.image_id)
        mask = cache.get(r.image_id, sample.image.shape[:2])
        assert not np.array_equal(mask, sample.roi)  # the model's ROI, not the GT's
        data_bytes = codec.encode(sample.image, mask, r.quality)
        assert hashlib.sha256(data_bytes).hexdigest() == r.sha256
        assert cache.note(r.image_id)["seconds"] > 0

    assert main(["report", "--run-dir", str(rd), "--points", "--format", "csv"]) == 0
    pts = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert {"ggm", "ggm@roi-pred", "gaussian-roi@roi-pred"} <= set(pts["codec"])


def test_non_default_settings_name_the_label_and_reach_the_codec(coco_root, tmp_path, capsys):
    rd = tmp_path / "run"
    assert main(["run", "--no-progress", "--codec", "ggm", "--codec", "jpeg", "--roi-method",
                 "blur", "--limit", "1", "--quality", "ggm:q1", "--quality", "jpeg:q50-b2.2",
                 "--metrics", "psnr", "--data-root", str(coco_root), "--run-dir", str(rd),
                 "--roi", "pred", "--roi-model", str(shared_model(SEGMENTER)),
                 "--roi-score", "0.3"]) == 0
    out = capsys.readouterr().out
    rows = {ln.split()[0]: ln.split() for ln in out.splitlines() if "@roi-" in ln}
    assert set(rows) == {"ggm@roi-pred@roi_score-0.3", "jpeg@roi-pred-blur@roi_score-0.3"}
    assert all(r[3] == "0" for r in rows.values())  # no error rows: each got its cached ROI
    (folder,) = (rd / "roi").iterdir()
    assert folder.name.endswith("-s0.3-d4")
