"""`bench check`: a real baseline on a tiny subset, then real regressions it must catch.

The gate itself, on the committed baseline, is not repeated here: `.ci/run` runs `bench
check` once, right after these tests (it took 276 s more as a test).
"""

from __future__ import annotations

import json
import math

import pytest

import bench.report.check as gate
from bench.cli import main
from bench.registry import CODECS
from bench.report.check import CI_SUBSET, DEFAULT_BASELINE, load_baseline
from tests.conftest import DETECTOR, shared_model


def check(*args: str) -> int:
    return main(["check", *args])


@pytest.fixture(scope="module")
def tiny_baseline(tmp_path_factory, coco_root):
    """jpeg (both CI qualities) and the ceiling on 2 images, no task: a second of work."""
    path = tmp_path_factory.mktemp("check") / "baseline.json"
    assert check("--update", "--baseline", str(path), "--codec", "jpeg", "--codec", "original",
                 "--images", "2", "--no-task", "--data-root", str(coco_root)) == 0
    return path


def edited(src, tmp_path, edit) -> str:
    doc = json.loads(src.read_text())
    edit(doc)
    out = tmp_path / "edited.json"
    out.write_text(json.dumps(doc))
    return str(out)


def test_update_then_check_passes(tiny_baseline, coco_root, capsys):
    doc = load_baseline(tiny_baseline)
    assert set(doc["codecs"]) == {"jpeg", "original"}
    assert set(doc["codecs"]["jpeg"]["cells"]) == set(CI_SUBSET["qualities"]["jpeg"])
    assert doc["codecs"]["jpeg"]["deterministic"] is True
    assert len(doc["data"]["image_ids"]) == 2 and doc["task"] is None
    env = doc["environment"]  # --update records the machine's fingerprint
    assert env == gate.environment_fingerprint()
    # the flags that change int8 results, each recorded as present or absent
    assert env["cpu"]["model"] and set(env["cpu"]["flags"]) == set(gate.ENV_CPU_FLAGS)
    assert all(isinstance(v, bool) for v in env["cpu"]["flags"].values())
    assert set(env["packages"]) == {"ultralytics", "ai-edge-litert", "onnxruntime",
                                    "opencv-python", "numpy", "torch"}
    assert env["packages"]["numpy"]
    capsys.readouterr()
    assert check("--baseline", str(tiny_baseline), "--data-root", str(coco_root)) == 0
    out = capsys.readouterr().out
    assert "bench check: passed: 3 cells, 12 values within tolerance" in out
    assert "fingerprint" not in out


def test_moved_bytes_fail_with_a_table(tiny_baseline, coco_root, tmp_path, capsys):
    def edit(doc):
        cell = doc["codecs"]["jpeg"]["cells"]["q10"]
        first = next(iter(cell["image_bytes"]))
        cell["image_bytes"][first] += 7
        cell["bytes"] += 7

    path = edited(tiny_baseline, tmp_path, edit)
    capsys.readouterr()
    assert check("--baseline", path, "--data-root", str(coco_root)) == 1
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("FAIL"))
    assert line.split()[:4] == ["FAIL", "jpeg", "q10", "bytes"]
    assert "-7" in line and "exact" in line and "image " in line
    assert "REGRESSION: 1 value(s) moved beyond tolerance" in out
    assert "bench check --update" in out


def test_changed_grid_fails_naming_the_cells(tiny_baseline, coco_root, tmp_path, capsys):
    def edit(doc):  # as if the grid had been q3..q90 with q12 where q10 is now
        jpeg = doc["codecs"]["jpeg"]
        jpeg["grid"] = [("q12" if q == "q10" else q) for q in jpeg["grid"]]
        jpeg["cells"]["q12"] = jpeg["cells"].pop("q10")

    path = edited(tiny_baseline, tmp_path, edit)
    capsys.readouterr()
    assert check("--baseline", path, "--data-root", str(coco_root)) == 1
    out = capsys.readouterr().out
    fails = [ln.split() for ln in out.splitlines() if ln.startswith("FAIL")]
    assert ["FAIL", "jpeg", "*", "quality", "grid"] == fails[0][:5]
    assert ["FAIL", "jpeg", "q12", "quality", "on", "grid", "not", "on", "the", "grid"] == \
        fails[1][:10]


def test_tolerances_psnr(tiny_baseline, coco_root, tmp_path, capsys):
    def nudge(by):
        def edit(doc):
            doc["codecs"]["jpeg"]["cells"]["q50"]["psnr"] += by
        return edit

    assert check("--baseline", edited(tiny_baseline, tmp_path, nudge(0.009)),
                 "--data-root", str(coco_root)) == 0
    capsys.readouterr()
    assert check("--baseline", edited(tiny_baseline, tmp_path, nudge(-0.02)),
                 "--data-root", str(coco_root)) == 1
    out = capsys.readouterr().out
    assert any(ln.split()[:4] == ["FAIL", "jpeg", "q50", "psnr"] and "±0.01" in ln
               for ln in out.splitlines())


def test_unavailable_codec_is_skipped_not_passed(tiny_baseline, coco_root, tmp_path,
                                                  capsys):
    def edit(doc):
        doc["codecs"]["vtm"] = dict(doc["codecs"]["jpeg"], version="VTM 23", grid=["qp37"],
                                    cells={"qp37": doc["codecs"]["jpeg"]["cells"]["q10"]})

    path = edited(tiny_baseline, tmp_path, edit)
    if CODECS.create("vtm").availability() is None:
        pytest.skip("VTM is installed here")
    capsys.readouterr()
    assert check("--baseline", path, "--data-root", str(coco_root)) == 0
    out = capsys.readouterr().out
    assert any(ln.split()[:3] == ["SKIP", "vtm", "*"] for ln in out.splitlines())
    assert "1 codec(s) SKIPPED (not checked)" in out
    assert check("--baseline", path, "--data-root", str(coco_root), "--strict") == 1


def test_usage_errors(tiny_baseline, tmp_path, capsys):
    assert check("--baseline", str(tmp_path / "none.json")) == 2
    assert "make one with `bench check --update`" in capsys.readouterr().err
    assert check("--baseline", str(tiny_baseline), "--codec", "webp") == 2
    assert "--codec webp: not in" in capsys.readouterr().err
    assert check("--baseline", str(tiny_baseline), "--images", "3") == 2


@pytest.fixture(scope="module")
def task_baseline(tmp_path_factory, coco_root):
    """jpeg q50 with detection on 1 image, made here (so with this machine's fingerprint)."""
    models = shared_model(DETECTOR).parent
    path = tmp_path_factory.mktemp("check-task") / "baseline.json"
    assert check("--update", "--baseline", str(path), "--codec", "jpeg", "--images", "1",
                 "--data-root", str(coco_root), "--models-dir", str(models)) == 0
    doc = json.loads(path.read_text())
    doc["codecs"]["jpeg"]["cells"] = {"q50": doc["codecs"]["jpeg"]["cells"]["q50"]}
    assert doc["task"]["model"] == DETECTOR and len(doc["task"]["sha256"]) == 64
    assert doc["environment"] == gate.environment_fingerprint()
    path.write_text(json.dumps(doc))
    return path


def run_task_check(path, coco_root) -> int:
    return check("--baseline", str(path), "--data-root", str(coco_root), "--models-dir",
                 str(shared_model(DETECTOR).parent))


def ap_drift(by):
    def edit(doc):
        doc["codecs"]["jpeg"]["cells"]["q50"]["det_ap"] += by
    return edit


def statuses(out: str, status: str) -> list[list[str]]:
    return [ln.split()[:4] for ln in out.splitlines() if ln.startswith(status)]


def test_detection_ap_tolerance(task_baseline, coco_root, tmp_path, capsys):
    """Same fingerprint: AP within ±0.3 passes, beyond fails; 1 image, 1 quality."""
    assert run_task_check(edited(task_baseline, tmp_path, ap_drift(0.25)), coco_root) == 0
    capsys.readouterr()
    assert run_task_check(edited(task_baseline, tmp_path, ap_drift(0.75)), coco_root) == 1
    out = capsys.readouterr().out
    assert statuses(out, "FAIL") == [["FAIL", "jpeg", "q50", "det_ap"]]
    assert not statuses(out, "WARN") and "fingerprint" not in out
    assert "REGRESSION: 1 value(s) moved beyond tolerance" in out


def test_ap_drift_on_another_cpu_warns(task_baseline, coco_root, tmp_path, capsys,
                                       monkeypatch):
    """Checked on a CPU without AMX/VNNI (as the fingerprint says): AP drift is WARN, exit 0."""
    here = gate.environment_fingerprint()

    def other_cpu():
        env = json.loads(json.dumps(here))
        env["cpu"]["model"] = "Some Other CPU"
        env["cpu"]["flags"].update(amx_int8=not env["cpu"]["flags"]["amx_int8"],
                                   avx512_vnni=not env["cpu"]["flags"]["avx512_vnni"])
        return env

    monkeypatch.setattr(gate, "environment_fingerprint", other_cpu)
    capsys.readouterr()
    assert run_task_check(edited(task_baseline, tmp_path, ap_drift(0.75)), coco_root) == 0
    out = capsys.readouterr().out
    head = out.split("status", 1)[0]  # the note comes once, above the table
    assert "fingerprint here differs" in head and out.count("fingerprint here differs") == 1
    assert "cpu model: " in head and "'Some Other CPU' (here)" in head
    assert "cpu flag amx_int8" in head and "cpu flag avx512_vnni" in head
    assert "ultralytics" not in head  # only what differs
    assert "AP of int8 detectors depends on the CPU kernels" in head
    assert "bench check --update` on the CI machine" in head
    assert statuses(out, "WARN") == [["WARN", "jpeg", "q50", "det_ap"]]
    assert not statuses(out, "FAIL")
    assert "bench check: passed: 1 cells, 5 values within tolerance; 1 task score(s)" in out


def test_bytes_drift_on_another_cpu_still_fails(task_baseline, coco_root, tmp_path, capsys):
    """A baseline made on another CPU: AP drift is WARN, moved bytes still FAIL (exit 1)."""
    def edit(doc):
        doc["environment"]["cpu"]["model"] = "Some Other CPU"
        ap_drift(-2.0)(doc)
        cell = doc["codecs"]["jpeg"]["cells"]["q50"]
        cell["image_bytes"][next(iter(cell["image_bytes"]))] += 7
        cell["bytes"] += 7

    capsys.readouterr()
    assert run_task_check(edited(task_baseline, tmp_path, edit), coco_root) == 1
    out = capsys.readouterr().out
    assert "'Some Other CPU' (baseline)" in out
    assert statuses(out, "FAIL") == [["FAIL", "jpeg", "q50", "bytes"]]
    assert statuses(out, "WARN") == [["WARN", "jpeg", "q50", "det_ap"]]
    assert "REGRESSION: 1 value(s) moved beyond tolerance" in out


def test_baseline_without_fingerprint_warns_on_ap(task_baseline, coco_root, tmp_path,
                                                  capsys):
    """A baseline from before the fingerprint counts as another environment, with a note."""
    def edit(doc):
        del doc["environment"]
        ap_drift(0.75)(doc)

    capsys.readouterr()
    assert run_task_check(edited(task_baseline, tmp_path, edit), coco_root) == 0
    out = capsys.readouterr().out
    head = out.split("status", 1)[0]
    assert "the baseline records no environment fingerprint" in head
    assert "here: " in head and "flags: " in head and "ai-edge-litert " in head
    assert statuses(out, "WARN") == [["WARN", "jpeg", "q50", "det_ap"]]
    assert "bench check: passed" in out


def test_other_environment_gates_everything_but_finite_ap(task_baseline):
    """compare() alone: PSNR and a score that became NaN still FAIL in another environment."""
    doc = json.loads(task_baseline.read_text())
    measured = {"codecs": {"jpeg": {**doc["codecs"]["jpeg"], "off_grid": []}},
                "task": doc["task"], "environment": doc["environment"]}
    cell = json.loads(json.dumps(doc["codecs"]["jpeg"]["cells"]["q50"]))
    cell.update(psnr=cell["psnr"] + 0.5, det_ap=float("nan"),
                det_ap50=cell["det_ap50"] + 3.0)
    measured["codecs"]["jpeg"]["cells"] = {"q50": cell}
    del doc["environment"]
    got = {(f.what, f.status) for f in gate.compare(doc, measured)}
    assert got == {("psnr", "FAIL"), ("det_ap", "FAIL"), ("det_ap50", "WARN")}


def test_detector_failures_fail_whatever_the_environment(task_baseline):
    """compare() alone: a cell whose detector scored fewer reconstructions than were coded
    (failed or missing predictions, which drop out of the AP) is a FAIL, even where AP drift
    itself is only a WARN."""
    doc = json.loads(task_baseline.read_text())
    cell = json.loads(json.dumps(doc["codecs"]["jpeg"]["cells"]["q50"]))
    assert cell["task_images"] == cell["images"]  # measured by --update
    measured = {"codecs": {"jpeg": {**doc["codecs"]["jpeg"], "off_grid": [],
                                    "cells": {"q50": {**cell, "task_images": 0}}}},
                "task": doc["task"], "environment": doc["environment"]}
    del doc["environment"]
    got = {(f.what, f.status) for f in gate.compare(doc, measured)}
    assert got == {("task images", "FAIL")}


def test_committed_baseline_matches_the_installed_grids():
    """Cheap half of the gate: a changed grid or subset shows without coding anything."""
    doc = load_baseline(DEFAULT_BASELINE)
    assert doc["task"]["model"] == CI_SUBSET["model"]
    for name, entry in doc["codecs"].items():
        assert set(entry["cells"]) == set(CI_SUBSET["qualities"][name]), name
        assert entry["grid"] == list(CODECS.get(name).qualities), (
            f"{name}'s quality grid changed; run `bench check --update` and commit "
            "results/ci_baseline.json")



def test_cpu_dependent_codec_digests_warn_only_on_another_cpu(task_baseline):
    """compare() alone: a codec whose bytes depend on the CPU's float kernels (the learned
    codecs: ``cpu_exact = False``) gets its digest as WARN and its bytes within 1 % on another
    CPU; on the baseline's CPU, and for every other codec, bytes and digest stay exact."""
    from bench.codecs.gaussian_roi import GaussianRoiCodec
    from bench.codecs.ggm import GgmRoiCodec
    from bench.codecs.jpeg import JpegCodec

    assert not GgmRoiCodec.cpu_exact and not GaussianRoiCodec.cpu_exact and JpegCodec.cpu_exact
    doc = json.loads(task_baseline.read_text())
    cell = json.loads(json.dumps(doc["codecs"]["jpeg"]["cells"]["q50"]))
    flipped = {**cell, "sha256": "f" * 64}
    grown = {**flipped, "bytes": cell["bytes"] + 3,
             "image_bytes": {i: b + 3 for i, b in cell["image_bytes"].items()}}
    far = {**flipped, "bytes": int(cell["bytes"] * 1.02) + 1}

    def findings(new_cell, cpu_exact, change=""):
        measured = {"codecs": {"jpeg": {**doc["codecs"]["jpeg"], "off_grid": [],
                                        "cpu_exact": cpu_exact, "cells": {"q50": new_cell}}},
                    "task": doc["task"], "environment": doc["environment"]}
        base = json.loads(json.dumps(doc))
        base["codecs"]["jpeg"]["cells"] = {"q50": cell}
        if change == "cpu":
            base["environment"]["cpu"]["model"] = "Some Other CPU"
        elif change in ("torch", "ultralytics"):
            base["environment"]["packages"][change] = "0.0.1"
        found = gate.compare(base, measured)
        return {(f.what, f.status, f.tolerance) if f.what == "bytes" else (f.what, f.status)
                for f in found}

    assert findings(flipped, False, "cpu") == {("bitstream sha256", "WARN")}
    assert findings(flipped, False, "torch") == {("bitstream sha256", "WARN")}
    assert findings(grown, False, "cpu") == {("bitstream sha256", "WARN")}
    tol = f"±{0.01 * cell['bytes']:.0f}"
    assert findings(far, False, "cpu") == {("bytes", "FAIL", tol)}
    # the same CPU and torch: exact, even where another package (the detector's) differs
    for change in ("", "ultralytics"):
        assert findings(flipped, False, change) == {("bitstream sha256", "FAIL")}
        assert findings(grown, False, change) == {("bytes", "FAIL", "exact")}
    assert findings(flipped, True, "cpu") == {("bitstream sha256", "FAIL")}


def test_psnr_means_are_capped_and_an_uncapped_baseline_still_compares():
    """A lossless cell's PSNRs are +inf per image; the gate's means cap them at 100 dB like
    every other mean (so the baseline is standard JSON), and a baseline written before the
    cap (holding +inf) compares equal to the capped measurement."""
    from bench.store import ImageResult

    rows = [ImageResult("original", "v", "source", i, bytes=10, sha256="ab", psnr=math.inf,
                        roi_psnr=math.inf, bg_psnr=math.inf) for i in (1, 2)]
    cell = gate.cell_of(rows, 2)
    assert (cell["psnr"], cell["roi_psnr"], cell["bg_psnr"]) == (100.0, 100.0, 100.0)
    json.dumps(cell, allow_nan=False)  # standard JSON
    old = {**cell, "psnr": math.inf, "roi_psnr": math.inf, "bg_psnr": math.inf}
    assert gate._compare_cell("original", "source", old, cell, gate.TOLERANCES, True) == []
    assert [f.what for f in gate._compare_cell("original", "source", old,
                                               {**cell, "psnr": 40.0}, gate.TOLERANCES,
                                               True)] == ["psnr"]
