"""Detection and segmentation scoring with real YOLO models and pycocotools.

Model files are untrusted input: crafted malicious ``.pt`` pickles are refused without
running (through the CLI too), a checkpoint Ultralytics itself writes loads in its safe
mode, other formats are refused by name, and a run is quiet and keeps Ultralytics' settings
in bench's cache with sync off.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from bench.cli import main
from bench.data.coco import CocoDataset
from bench.scoring import missing_predictions, predict_rows
from bench.store import ImageResult, ResultsStore
from bench.tasks import TaskError
from bench.tasks.cocoeval import evaluate
from bench.tasks.detection import DetectionTask
from bench.tasks.segmentation import SegmentationTask
from bench.tasks.ultralytics_backend import file_sha256
from tests.conftest import DETECTOR, FAST_SEGMENTER, SEGMENTER, shared_model


def ap_table(capsys) -> dict[tuple[str, str], list[str]]:
    out = capsys.readouterr().out.splitlines()
    out = out[next(i for i, ln in enumerate(out) if "quality" in ln and "codec" in ln):]
    head = out[0].split("  ")
    head = [h.strip() for h in head if h.strip()]
    return {tuple(ln.split()[:2]): dict(zip(head, ln.split(), strict=False)) for ln in out[2:]}


@pytest.mark.slow
def test_uncompressed_ceiling_detection(coco_root, tmp_path, capsys):
    model = shared_model(DETECTOR)
    assert main(["run", "--no-progress", "--codec", "original", "--task", "detection",
                 "--model", str(model), "--data-root", str(coco_root),
                 "--run-dir", str(tmp_path)]) == 0
    row = ap_table(capsys)[("original", "source")]
    assert 35.4 <= float(row["det AP"]) <= 36.4, row


@pytest.mark.slow
def test_uncompressed_ceiling_segmentation(coco_root, tmp_path, capsys):
    model = shared_model(SEGMENTER)
    assert main(["run", "--no-progress", "--codec", "original", "--task", "segmentation",
                 "--model", str(model), "--data-root", str(coco_root),
                 "--run-dir", str(tmp_path)]) == 0
    row = ap_table(capsys)[("original", "source")]
    assert 29.3 <= float(row["mask AP"]) <= 30.3, row


@pytest.mark.slow
def test_ap_falls_with_rate_and_tasks_reuse_stored_work(coco_root, tmp_path, capsys):
    model = shared_model(FAST_SEGMENTER)
    base = ["run", "--no-progress", "--codec", "jpeg", "--quality", "q3", "--quality", "q90",
            "--limit", "20", "--data-root", str(coco_root), "--run-dir", str(tmp_path)]
    assert main([*base, "--task", "detection", "--model", str(model)]) == 0
    table = ap_table(capsys)
    assert float(table[("jpeg", "q3")]["det AP"]) < float(table[("jpeg", "q90")]["det AP"])
    db = sqlite3.connect(tmp_path / "results.sqlite")
    coded = db.execute("SELECT quality, image_id, created FROM results").fetchall()
    detected = db.execute("SELECT image_id, created FROM predictions").fetchall()
    assert len(coded) == 40 and len(detected) == 40
    # adding segmentation: no re-encoding, no new detection predictions
    assert main([*base, "--task", "detection", "--task", "segmentation",
                 "--model", f"detection={model}", "--model", f"segmentation={model}"]) == 0
    assert "0 to compute" in capsys.readouterr().err
    assert db.execute("SELECT quality, image_id, created FROM results").fetchall() == coded
    assert db.execute("SELECT image_id, created FROM predictions WHERE task='detection'"
                      ).fetchall() == detected
    assert db.execute("SELECT COUNT(*) FROM predictions WHERE task='segmentation'"
                      ).fetchone()[0] == 40


def test_scoring_resumes_and_records_failures(coco_root, tmp_path):
    ds = CocoDataset(coco_root, limit=3)
    task = DetectionTask(str(shared_model(FAST_SEGMENTER)))
    task.check_categories(ds.coco.dataset["categories"])
    from bench.registry import create_codec

    codec = create_codec("original")
    with ResultsStore(tmp_path) as store:
        for i in ds.ids:
            s = ds.load(i)
            data = s.source if i != ds.ids[2] else b"garbage"  # the third cannot decode
            store.put(ImageResult("original", codec.version(), "source", i, width=s.image.shape[1],
                                  height=s.image.shape[0], bytes=len(data), bitstream=data))
        codecs, qualities = {"original": codec}, {"original": ("source",)}
        todo = missing_predictions(store, task, codecs, qualities, ds.ids)
        predict_rows(store, task, codecs, todo[:1], tmp_path)  # "crash" after one image
        todo = missing_predictions(store, task, codecs, qualities, ds.ids)
        assert [r.image_id for r in todo] == ds.ids[1:]
        predict_rows(store, task, codecs, todo, tmp_path)
        ok, bad = store.predictions("original", codec.version(), "source", "detection",
                                    task.model_key(), ds.ids)
    assert sorted(ok) == ds.ids[:2] and list(bad) == [ds.ids[2]]
    assert "cannot decode" in bad[ds.ids[2]]
    dets = json.loads(ok[ds.ids[0]])
    assert dets and {"image_id", "category_id", "bbox", "score"} <= set(dets[0])
    assert len(dets) <= 100 and min(d["score"] for d in dets) >= 0.001


def test_segmentation_results_carry_rle_masks(coco_root):
    ds = CocoDataset(coco_root, limit=1)
    task = SegmentationTask(str(shared_model(FAST_SEGMENTER)))
    task.check_categories(ds.coco.dataset["categories"])
    sample = ds.load(ds.ids[0])
    res = task.predict(sample.image, sample.image_id)
    assert res and res[0]["segmentation"]["size"] == list(sample.image.shape[:2])
    for r in res:  # each mask non-empty and where its box is (mask and box come apart)
        mask = mask_utils.decode(r["segmentation"]).astype(bool)
        x, y, w, h = r["bbox"]
        box = np.zeros_like(mask)
        box[int(y):math.ceil(y + h), int(x):math.ceil(x + w)] = True
        assert mask.any() and (mask & box).sum() >= 0.95 * mask.sum(), r["bbox"]
    stats = evaluate(ds.coco, res, ds.ids, "segm")
    assert stats["AP"] > 5  # 11.5 on this picture (image 139, 89 masks)


def test_missing_model_file(tmp_path):
    with pytest.raises(TaskError, match="nope.tflite not found"):
        DetectionTask(str(tmp_path / "nope.tflite"))


def test_offline_download_name_is_refused(monkeypatch):
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    with pytest.raises(TaskError, match="yolov8n.pt.*downloads are off"):
        DetectionTask("yolov8n.pt")


def test_file_that_is_not_a_model(tmp_path):
    bad = tmp_path / "junk.tflite"
    bad.write_bytes(b"\x00not a model" * 100)
    with pytest.raises(TaskError, match="junk.tflite"):
        DetectionTask(str(bad))


def test_detector_asked_for_masks():
    with pytest.raises(TaskError, match="predicts no masks"):
        SegmentationTask(str(shared_model(DETECTOR)))


def test_model_of_other_classes_is_refused(coco_root):
    cats = json.loads((coco_root / "annotations" / "instances_val2017.json").read_text())
    cats = sorted(cats["categories"], key=lambda c: c["id"])
    cats[3] = dict(cats[3], name="unicorn")
    task = DetectionTask(str(shared_model(FAST_SEGMENTER)))
    with pytest.raises(TaskError, match="unicorn"):
        task.check_categories(cats)
    with pytest.raises(TaskError, match="different counts|do not match"):
        task.check_categories(cats[:10])


def test_zero_detections_is_ap_zero_with_warning(coco_root):
    ds = CocoDataset(coco_root, limit=2)
    with pytest.warns(UserWarning, match="no detections"):
        stats = evaluate(ds.coco, [], ds.ids, "bbox")
    assert stats["AP"] == 0.0 and stats["AP50"] == 0.0


def test_zero_detections_keep_nan_where_there_is_no_ground_truth(coco_root):
    """An image without large objects has no APl with detections (pycocotools' -1, NaN);
    without any detection it must not become 0 (a codec that destroys every detection
    would otherwise get APl 0 where the others get NaN)."""
    ds = CocoDataset(coco_root)
    gt = ds.coco
    no_large = next(i for i in ds.ids if gt.getAnnIds(imgIds=[i], iscrowd=False)
                    and all(a["area"] <= 96 ** 2 for a in gt.loadAnns(gt.getAnnIds(imgIds=[i]))))
    with pytest.warns(UserWarning, match="no detections"):
        none = evaluate(gt, [], [no_large], "bbox")
    one = [{"image_id": no_large, "category_id": gt.loadAnns(gt.getAnnIds(imgIds=[no_large]))
            [0]["category_id"], "bbox": [0.0, 0.0, 5.0, 5.0], "score": 0.5}]
    some = evaluate(gt, one, [no_large], "bbox")
    assert math.isnan(some["APl"]) and math.isnan(none["APl"])
    assert none["AP"] == 0.0


def test_cli_task_errors_are_clear(coco_root, tmp_path, capsys):
    args = ["run", "--no-progress", "--codec", "jpeg", "--data-root", str(coco_root),
            "--limit", "1", "--run-dir", str(tmp_path)]
    assert main([*args, "--task", "detection", "--model", str(tmp_path / "x.onnx")]) == 2
    assert "x.onnx not found" in capsys.readouterr().err
    assert main([*args, "--task", "detectoin"]) == 2
    assert "did you mean 'detection'" in capsys.readouterr().err
    assert main([*args, "--model", "m.onnx"]) == 2
    assert not (tmp_path / "results.sqlite").exists()


def test_faster_coco_eval_gives_the_same_numbers(coco_root):
    pytest.importorskip("faster_coco_eval")
    ds = CocoDataset(coco_root, limit=6)
    task = SegmentationTask(str(shared_model(FAST_SEGMENTER)))
    task.check_categories(ds.coco.dataset["categories"])
    results = [r for i in ds.ids for r in task.predict(ds.load(i).image, i)]
    for iou_type in ("bbox", "segm"):
        ref = evaluate(ds.coco, results, ds.ids, iou_type)
        fast = evaluate(ds.coco, results, ds.ids, iou_type, "faster-coco-eval")
        assert ref["AP"] > 0
        assert fast == pytest.approx(ref, abs=1e-9, nan_ok=True)


# --------------------------------------------------------------------------- safe model loading


class _CreatesAFile:
    """Unpickling this calls ``open(marker, "w")``: a payload that leaves a visible trace."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def malicious_checkpoints(folder: Path, marker: Path) -> list[Path]:
    """The payload as a torch zip checkpoint, a legacy torch file and a bare pickle."""
    import pickle

    import torch

    payload = {"model": _CreatesAFile(marker), "train_args": {}}
    paths = [folder / "evil.pt", folder / "evil-legacy.pt", folder / "evil-pickle.pt"]
    torch.save(payload, paths[0])
    torch.save(payload, paths[1], _use_new_zipfile_serialization=False)
    paths[2].write_bytes(pickle.dumps(payload))
    return paths


def test_malicious_checkpoints_are_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    for path in malicious_checkpoints(tmp_path, marker):
        with pytest.raises(TaskError) as info:
            DetectionTask(str(path))
        message = str(info.value)
        assert f"refused model {path}" in message and "Nothing in it was run" in message
        assert "export it to ONNX or TFLite" in message
        assert not marker.exists(), f"loading {path.name} ran code from it"


def test_cli_refuses_a_malicious_checkpoint(coco_root, tmp_path, capsys):
    marker = tmp_path / "pwned"
    evil = malicious_checkpoints(tmp_path, marker)[0]
    assert main(["run", "--no-progress", "--codec", "original", "--task", "detection",
                 "--model", str(evil), "--data-root", str(coco_root), "--limit", "1",
                 "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "refused model" in err and "not a plain Ultralytics checkpoint" in err
    assert "references types outside" not in err  # Ultralytics' message, said after running it
    assert not marker.exists()


def test_without_safe_mode_a_checkpoint_is_refused_unread(tmp_path):
    """ultralytics imported before bench (safe mode off): .pt files are refused, not run."""
    marker = tmp_path / "pwned"
    evil = malicious_checkpoints(tmp_path, marker)[0]
    code = ("import ultralytics\n"
            "from bench.tasks import TaskError\n"
            "from bench.tasks.detection import DetectionTask\n"
            "try:\n"
            f"    DetectionTask({str(evil)!r})\n"
            "except TaskError as exc:\n"
            "    print(exc)\n")
    env = {k: v for k, v in os.environ.items() if k != "ULTRALYTICS_SAFE_LOAD"}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=300, cwd=Path(__file__).resolve().parents[1])
    assert "imported before bench could switch on its safe-load mode" in run.stdout, run.stderr
    assert not marker.exists()


def test_a_genuine_checkpoint_loads_in_safe_mode(tmp_path):
    """A checkpoint Ultralytics itself writes (from its yolov8n.yaml, untrained) loads."""
    from bench.tasks.ultralytics_backend import import_ultralytics, safe_load_problem

    import_ultralytics()
    from ultralytics import YOLO
    from ultralytics.nn import tasks

    path = tmp_path / "yolov8n-untrained.pt"
    YOLO("yolov8n.yaml").save(path)
    assert safe_load_problem() is None and tasks.SAFE_LOAD is True
    task = DetectionTask(str(path))
    assert task.model.task == "detect" and len(task.model.names) == 80
    assert task.model_info()["sha256"] == file_sha256(path)


def test_torchscript_in_a_pt_file_is_refused(tmp_path):
    import torch

    path = tmp_path / "scripted.pt"
    with warnings.catch_warnings():  # torch deprecates making TorchScript; users still have it
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.trace(torch.nn.Conv2d(3, 4, 1), torch.zeros(1, 3, 8, 8)), path)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(TaskError, match="cannot load model .*TorchScript"):
            DetectionTask(str(path))
    assert not [w for w in seen if "TorchScript" in str(w.message)]


@pytest.mark.parametrize("name, reason", [
    ("model.torchscript", "not .torchscript files"),
    ("model.engine", "not .engine files"),
    ("model", "not files without a suffix"),
    ("best_qnn.onnx", "would read this file as 'qnn', not 'onnx'"),
    ("coral_edgetpu.tflite", "would read this file as 'edgetpu'"),
])
def test_other_model_formats_are_refused_by_name(tmp_path, name, reason):
    path = tmp_path / name
    path.write_bytes(b"\x00" * 64)  # refused before its content is read
    with pytest.raises(TaskError, match=f"refused model .*{reason}"):
        DetectionTask(str(path))


def test_a_saved_model_folder_is_refused(tmp_path):
    folder = tmp_path / "yolov8n_saved_model"
    folder.mkdir()
    with pytest.raises(TaskError, match="is a directory; bench loads only .pt, .onnx"):
        DetectionTask(str(folder))


QUIET_RUN = ["-m", "bench", "run", "--no-progress", "--codec", "original", "--task",
             "detection", "--limit", "1"]


def test_ultralytics_is_quiet_and_keeps_its_settings_in_benchs_cache(coco_root, tmp_path):
    """A fresh process with no YOLO_CONFIG_DIR: no banner, no TFLite line, no sync."""
    home, cache = tmp_path / "home", tmp_path / "cache"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("YOLO_CONFIG_DIR", "ULTRALYTICS_SAFE_LOAD", "XDG_CONFIG_HOME")}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(cache))
    run = subprocess.run(
        [sys.executable, *QUIET_RUN, "--model", str(shared_model(DETECTOR)),
         "--data-root", str(coco_root), "--run-dir", str(tmp_path / "run")],
        env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    output = run.stdout + run.stderr
    for noise in ("Ultralytics Settings", "XNNPACK", "for LiteRT inference", "jit"):
        assert noise not in output, noise
    settings = json.loads((cache / "bench" / "ultralytics" / "Ultralytics" / "settings.json")
                          .read_text())
    assert settings["sync"] is False
    assert not (home / ".config" / "Ultralytics").exists()
