"""Executors: the same run with a local process pool and with Ray gives identical results.

Ray is real: the test starts a local Ray instance (``--executor ray`` without an address),
codes shared images with deterministic codecs, predicts with the shared detector, and
compares bitstream digests, metrics, predictions and AP with the local executor's.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from bench.cli import main
from tests.conftest import DETECTOR, shared_model
from tests.test_run import _predictions

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")


def _store(run_dir) -> tuple[list, dict]:
    db = sqlite3.connect(os.path.join(run_dir, "results.sqlite"))
    try:
        rows = sorted(db.execute(
            "SELECT codec, codec_version, quality, image_id, sha256, bytes, psnr, roi_psnr, "
            "bg_psnr, error FROM results"))
    finally:
        db.close()
    return rows, _predictions(run_dir)


def test_local_and_ray_executors_give_identical_results(coco_root, tmp_path, capsys):
    model = str(shared_model(DETECTOR))
    base = ["run", "--no-progress", "--codec", "jpeg", "--codec", "hevc",
            "--quality", "q50", "--quality", "qp37", "--limit", "3", "--metrics", "psnr",
            "--task", "detection", "--model", model, "--data-root", str(coco_root)]
    runs = {
        "local-1": ["--executor", "local", "--jobs", "1"],
        "local-2": ["--executor", "local", "--jobs", "2"],
        "ray": ["--executor", "ray", "--jobs", "2"],
        "ray-ship": ["--executor", "ray", "--jobs", "2", "--ship-images"],
    }
    stores, tables = {}, {}
    for name, extra in runs.items():
        capsys.readouterr()
        assert main([*base, *extra, "--run-dir", str(tmp_path / name)]) == 0, name
        tables[name] = capsys.readouterr().out
        stores[name] = _store(tmp_path / name)
    rows, preds = stores["local-1"]
    assert len(rows) == 6 and all(r[4] and r[9] is None for r in rows)
    assert len(preds) == 6 and all(preds.values())
    for name in runs:
        assert stores[name] == stores["local-1"], name
        # the summary tables agree except for the timing columns
        assert _without_times(tables[name]) == _without_times(tables["local-1"]), name
    assert not ray.is_initialized()  # the run shut down the instance it started


def _without_times(table: str) -> list[list[str]]:
    lines = [line.split() for line in table.strip().splitlines()]
    return [cells[:-2] for cells in lines]


def test_ship_images_needs_ray_and_a_cached_roi_free_run(coco_root, tmp_path, capsys):
    base = ["run", "--no-progress", "--codec", "jpeg", "--limit", "1", "--data-root",
            str(coco_root), "--run-dir", str(tmp_path / "r")]
    assert main([*base, "--ship-images"]) == 2
    assert "--executor ray" in capsys.readouterr().err
    assert main([*base, "--ray-address", "127.0.0.1:1"]) == 2
    assert "needs --executor ray" in capsys.readouterr().err


def test_check_with_the_ray_executor_passes_a_baseline_made_locally(coco_root, tmp_path,
                                                                    capsys):
    """bench check drives the same pipeline: a baseline measured with the local pool is met
    exactly (bytes, digests, PSNR) when the gate's subset is coded by Ray actors."""
    baseline = tmp_path / "baseline.json"
    common = ["--baseline", str(baseline), "--data-root", str(coco_root)]
    assert main(["check", "--update", "--codec", "jpeg", "--images", "2", "--no-task",
                 *common]) == 0
    capsys.readouterr()
    assert main(["check", "--executor", "ray", "--jobs", "2", *common]) == 0
    assert "bench check: passed: 2 cells" in capsys.readouterr().out
    assert main(["check", "--ray-address", "127.0.0.1:1", *common]) == 2
    assert "needs --executor ray" in capsys.readouterr().err


def test_a_local_ray_instance_gets_the_drivers_niceness(monkeypatch):
    """Ray's default nice 15 made its workers lose the CPU to any other process: a local
    instance is started with the driver's niceness, unless the user set one; a cluster's
    address leaves it alone. Checked on a real actor of a driver at nice +3 (Ray's setting
    adds to the niceness the raylet inherits from the driver: passing the driver's own
    niceness gave a nice-5 driver nice-10 workers)."""
    from bench.runner import _local_worker_niceness

    code = textwrap.dedent("""
        import os, ray
        from bench.runner import _local_worker_niceness
        os.nice(3)
        with _local_worker_niceness(True):
            ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        assert "RAY_worker_niceness" not in os.environ  # the driver's environment restored
        try:
            print(os.nice(0), ray.get(ray.remote(num_cpus=1)(lambda: os.nice(0)).remote()))
        finally:
            ray.shutdown()
    """)
    env = {k: v for k, v in os.environ.items() if k != "RAY_worker_niceness"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    driver, actor = map(int, out.stdout.split()[-2:])
    assert driver == os.nice(0) + 3 or driver == 19
    assert actor == driver
    monkeypatch.setenv("RAY_worker_niceness", "7")
    with _local_worker_niceness(True):
        assert os.environ["RAY_worker_niceness"] == "7"
    with _local_worker_niceness(False):
        assert os.environ["RAY_worker_niceness"] == "7"
