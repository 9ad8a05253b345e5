"""`bench run` end to end on real images: tables, resume, bad input, SIGKILL, process pool."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from bench.cli import main
from bench.data.images import encode_png, read_rgb
from bench.registry import create_codec
from bench.runner import RECON_BITSTREAM_KEY, kept_recon, recon_path
from bench.store import ResultsStore
from bench.summary import QualitySummary, summarize
from tests.conftest import jpeg_bytes, natural_image, write_coco


def run(*args: str) -> int:
    return main(["run", "--no-progress", *args])


def table(run_dir, codecs=("jpeg",), ids=None):
    """The deterministic columns of the summary of a run directory."""
    with ResultsStore(run_dir) as store:
        rows = store.results(image_ids=ids)
    grids = {c: create_codec(c).qualities for c in codecs}
    return [tuple(getattr(s, k) for k in QualitySummary.DETERMINISTIC)
            for s in summarize(rows, list(codecs), grids)]


def test_run_prints_table_and_resumes(tiny_coco, tmp_path, capsys):
    rd = tmp_path / "run"
    assert run("--codec", "jpeg", "--codec", "original", "--data-root", str(tiny_coco),
               "--run-dir", str(rd), "--keep-recon") == 0
    out, err = capsys.readouterr()
    assert "bpp (pooled)" in out and " q90 " in out and "source" in out
    assert "0 of 40 rows already" in err
    with ResultsStore(rd) as store:
        rows = store.results()
    assert len(rows) == 40 and all(r.ok for r in rows)
    one = next(r for r in rows if r.image_id == 4 and r.codec == "jpeg")
    assert (one.width, one.height) == (1, 1) and "MS-SSIM undefined" in one.notes
    empty = next(r for r in rows if r.image_id == 3 and r.codec == "jpeg")
    assert np.isnan(empty.roi_psnr) and "empty ROI" in empty.notes
    orig = next(r for r in rows if r.codec == "original" and r.image_id == 1)
    assert orig.psnr == np.inf
    assert orig.bytes == (tiny_coco / "val2017" / "000000000001.jpg").stat().st_size
    # bpp is 8·bytes / (W·H) of the original
    assert all(r.bpp == pytest.approx(8 * r.bytes / (r.width * r.height)) for r in rows)
    # kept reconstructions decode to what the codec decoded
    rec = recon_path(rd, "jpeg", "q50", 1)
    codec_row = next(r for r in rows
                     if r.codec == "jpeg" and r.quality == "q50" and r.image_id == 1)
    with ResultsStore(rd) as store:
        bits = store.bitstream("jpeg", codec_row.codec_version, "q50", 1)
    assert (np.asarray(Image.open(rec)) == create_codec("jpeg").decode(bits)).all()
    assert (kept_recon(rd, codec_row) == np.asarray(Image.open(rec))).all()
    # a picture at that path from another bitstream (an older version under the same
    # label) or without the tag is not this row's: it is decoded instead, never scored
    other = np.zeros_like(np.asarray(Image.open(rec)))
    rec.write_bytes(encode_png(other, {RECON_BITSTREAM_KEY: "0" * 64}))
    assert kept_recon(rd, codec_row) is None
    rec.write_bytes(encode_png(other))
    assert kept_recon(rd, codec_row) is None

    before = table(rd)
    assert run("--codec", "jpeg", "--data-root", str(tiny_coco), "--run-dir", str(rd)) == 0
    assert "36 of 36 rows already" in capsys.readouterr().err
    assert table(rd) == before


def test_quality_and_selection_options(tiny_coco, tmp_path, capsys):
    rd = tmp_path / "run"
    assert run("--codec", "jpeg", "--quality", "q5", "--quality", "jpeg:q50", "--image-ids",
               "2,1", "--limit", "1", "--data-root", str(tiny_coco), "--run-dir", str(rd)) == 0
    with ResultsStore(rd) as store:
        assert {(r.quality, r.image_id) for r in store.results()} == {("q5", 1), ("q50", 1)}
    assert run("--codec", "jpeg", "--quality", "q7", "--data-root", str(tiny_coco),
               "--run-dir", str(rd)) == 2
    assert "no such quality" in capsys.readouterr().err
    assert run("--codec", "jepg", "--data-root", str(tiny_coco), "--run-dir", str(rd)) == 2
    assert "did you mean 'jpeg'" in capsys.readouterr().err


def _bad_coco(tmp_path):
    """One good image, then every kind of broken entry."""
    good = natural_image(40, 48, seed=1)
    cut = jpeg_bytes(natural_image(40, 48, seed=2))
    images = [
        {"id": 1, "file_name": "good.jpg", "height": 40, "width": 48, "data": jpeg_bytes(good)},
        {"id": 2, "file_name": "cut.jpg", "height": 40, "width": 48, "data": cut[: len(cut) // 3]},
        {"id": 3, "file_name": "../escape.jpg", "height": 40, "width": 48},
        {"id": 4, "file_name": "/abs.jpg", "height": 40, "width": 48},
        {"id": 5, "file_name": "missing.jpg", "height": 40, "width": 48},
    ]
    for i, mode in enumerate(["L", "CMYK", "RGBA", "P", "I;16"], start=6):
        rgb = natural_image(21, 33, seed=i)
        if mode == "I;16":
            im = Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)
        else:
            im = Image.fromarray(rgb).convert(mode)
        ext = "jpg" if mode in ("L", "CMYK") else "png"
        path = tmp_path / f"m{i}.{ext}"
        im.save(path)
        images.append({"id": i, "file_name": path.name, "height": 21, "width": 33,
                       "data": path.read_bytes()})
    return write_coco(tmp_path / "coco", images, [])


def test_bad_images_become_counted_error_rows(tmp_path, capsys):
    root = _bad_coco(tmp_path)
    rd = tmp_path / "run"
    assert run("--codec", "jpeg", "--quality", "q50", "--data-root", str(root),
               "--run-dir", str(rd)) == 1  # the run goes on, and its exit says rows failed
    out, err = capsys.readouterr()
    with ResultsStore(rd) as store:
        rows = {r.image_id: r for r in store.results()}
    assert len(rows) == 10
    assert rows[1].ok and all(rows[i].ok for i in range(6, 11)), [rows[i].error for i in rows]
    assert "cut.jpg" in rows[2].error
    assert "escapes the image folder" in rows[3].error and "escapes" in rows[4].error
    assert "missing.jpg" in rows[5].error
    line = next(ln for ln in out.splitlines() if " q50 " in ln)
    assert line.split()[2:4] == ["10", "4"]  # images, errors
    assert "4 row(s) failed" in err and "--retry-errors" in err


def test_unusable_annotations_fail_before_any_work(tmp_path, capsys):
    rd = tmp_path / "run"
    assert run("--codec", "jpeg", "--data-root", str(tmp_path / "nowhere"),
               "--run-dir", str(rd)) == 2
    assert "not found" in capsys.readouterr().err
    assert not rd.exists()


def test_a_codec_no_quality_applies_to_is_an_error_not_left_out(tiny_coco, tmp_path, capsys):
    rd = tmp_path / "run"
    assert run("--codec", "jpeg", "--codec", "original", "--quality", "q50", "--data-root",
               str(tiny_coco), "--run-dir", str(rd)) == 2
    err = capsys.readouterr().err
    assert "--codec original: no --quality given is in its grid (source)" in err
    assert "--quality original:Q" in err and not rd.exists()


def test_a_failure_in_the_driver_stops_the_run_and_is_no_codec_error(tiny_coco, tmp_path):
    """Committing a unit (the store, the progress callback) happens in the driver: when it
    fails the run stops with that error, rows committed before it stay, and nothing is
    stored as a failure of the codec."""
    from bench.data.coco import CocoDataset
    from bench.pipeline import Pipeline
    from bench.registry import create_codec

    calls = []

    def on_row(row):
        calls.append(row.image_id)
        if len(calls) == 2:
            raise OSError("the terminal went away")

    with ResultsStore(tmp_path / "run") as store:
        pipeline = Pipeline(store, CocoDataset(str(tiny_coco)), {"jpeg": create_codec("jpeg")},
                            {"jpeg": ("q50",)}, run_dir=str(tmp_path / "run"),
                            metrics=("psnr",))
        with pytest.raises(OSError, match="terminal went away"):
            pipeline.code(pipeline.plan(), jobs=2, on_row=on_row)
        rows = store.results()
    assert 2 <= len(rows) <= 4 and all(r.ok for r in rows), [r.error for r in rows]


def test_process_pool_gives_the_same_rows(tiny_coco, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert run("--codec", "jpeg", "--data-root", str(tiny_coco), "--run-dir", str(a)) == 0
    assert run("--codec", "jpeg", "--jobs", "2", "--data-root", str(tiny_coco),
               "--run-dir", str(b)) == 0
    with ResultsStore(a) as sa, ResultsStore(b) as sb:
        ha = {(r.quality, r.image_id): r.sha256 for r in sa.results()}
        hb = {(r.quality, r.image_id): r.sha256 for r in sb.results()}
    assert ha == hb and len(ha) == 36


@pytest.mark.slow
def test_sigkill_then_rerun_equals_uninterrupted_run(coco_root, tmp_path):
    ids = None
    args = ["--codec", "jpeg", "--limit", "12", "--data-root", str(coco_root)]
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    env = dict(os.environ, BENCH_PROGRESS="0")
    cmd = [sys.executable, "-m", "bench", "run", *args, "--run-dir", str(killed)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = killed / "results.sqlite"
    deadline = time.time() + 120
    count = 0
    while time.time() < deadline and proc.poll() is None:
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=1) as con:
                    count = con.execute("SELECT COUNT(*) FROM results").fetchone()[0]
            except sqlite3.OperationalError:
                count = 0
            if count >= 20:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed; use more images"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with ResultsStore(killed) as store:
        partial = len(store.results())
    assert 20 <= partial < 12 * 9
    assert subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    assert run(*args, "--run-dir", str(clean)) == 0
    assert table(killed, ids=ids) == table(clean, ids=ids)
    with ResultsStore(killed) as store:
        assert len(store.results()) == 12 * 9


def test_original_row_matches_source_pixels(coco_root, tmp_path):
    rd = tmp_path / "run"
    assert run("--codec", "original", "--limit", "2", "--keep-recon", "--data-root",
               str(coco_root), "--run-dir", str(rd)) == 0
    with ResultsStore(rd) as store:
        rows = store.results()
    assert len(rows) == 2
    for r in rows:
        src = coco_root / "val2017" / r.file_name
        assert r.bytes == src.stat().st_size and r.psnr == np.inf
        pixels, _ = read_rgb(src)
        assert (np.asarray(Image.open(recon_path(rd, "original", "source", r.image_id)))
                == pixels).all()


@pytest.mark.parametrize("jobs", [1, 2])
def test_broken_encoder_gives_error_rows_and_the_run_goes_on(tiny_coco, tmp_path, jobs):
    from bench.runner import RunConfig, execute, plan_units

    crash = tmp_path / "ffmpeg"
    crash.write_text("#!/bin/sh\necho 'fatal: simulated encoder crash' >&2\nexit 3\n")
    crash.chmod(0o755)
    opts = {"webp": {"ffmpeg": str(crash)}}
    codecs = {"jpeg": create_codec("jpeg"), "webp": create_codec("webp", **opts["webp"])}
    qualities = {"jpeg": ("q50",), "webp": codecs["webp"].qualities[:1]}
    cfg = RunConfig(data_root=str(tiny_coco), run_dir=str(tmp_path / "run"),
                    codec_options=opts)
    with ResultsStore(tmp_path / "run") as store:
        units = plan_units(store, codecs, qualities, [1, 2, 3])
        assert execute(units, cfg, store, jobs=jobs) == 6
        rows = store.results()
    bad = [r for r in rows if r.codec == "webp"]
    assert len(bad) == 3 and all("exit" in r.error and "simulated encoder crash" in r.error
                                 for r in bad), bad[0].error
    assert all(r.ok for r in rows if r.codec == "jpeg")


def test_a_codec_whose_version_changed_since_planning_fails_its_rows(tiny_coco, tmp_path):
    """A worker loads its codec when it reaches the codec's first unit, maybe hours after
    the run planned it (new weights exported meanwhile): rows coded by another version than
    the planned one would be stored under the wrong key, so they fail with the reason."""
    import dataclasses

    from bench.runner import RunConfig, execute, plan_units

    codecs = {"jpeg": create_codec("jpeg")}
    cfg = RunConfig(data_root=str(tiny_coco), run_dir=str(tmp_path / "run"))
    with ResultsStore(tmp_path / "run") as store:
        units = plan_units(store, codecs, {"jpeg": ("q50",)}, [1, 2])
        assert execute(units, cfg, store, jobs=1) == 2
        good = {r.image_id: r.bytes for r in store.results()}
        stale = [dataclasses.replace(u, version="jpeg-planned-earlier") for u in units]
        execute(stale, cfg, store, jobs=1)
        failed = store.results("jpeg", "jpeg-planned-earlier")
        assert len(failed) == 2 and all("the run planned 'jpeg-planned-earlier'" in r.error
                                        for r in failed)
        assert {r.image_id: r.bytes for r in store.results("jpeg", units[0].version)} == good


def _predictions(run_dir) -> dict:
    db = sqlite3.connect(os.path.join(run_dir, "results.sqlite"))
    try:
        return {row[:6]: row[6] for row in db.execute(
            "SELECT codec, codec_version, quality, image_id, task, model_key, results "
            "FROM predictions")}
    finally:
        db.close()


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_tasks_predict_where_the_reconstruction_was_decoded(coco_root, tmp_path, monkeypatch,
                                                            capsys, jobs):
    """With --task in the coding run, the worker that decoded a reconstruction predicts on
    it: the scoring phase decodes nothing (predict_rows is never called) and the predictions
    equal those of a task added to the finished run (which decodes the stored bitstreams)."""
    import bench.pipeline
    from tests.conftest import DETECTOR, shared_model

    model = str(shared_model(DETECTOR))
    base = ["--codec", "jpeg", "--quality", "q10", "--quality", "q50", "--limit", "3",
            "--metrics", "psnr", "--data-root", str(coco_root)]
    task = ["--task", "detection", "--model", model]
    one_pass, two_pass = tmp_path / "one", tmp_path / "two"
    assert run(*base, "--run-dir", str(two_pass), "--jobs", jobs) == 0
    assert run(*base, *task, "--run-dir", str(two_pass), "--jobs", jobs) == 0
    later = _predictions(two_pass)
    assert len(later) == 6 and all(v for v in later.values())

    def no_second_decode(*args, **kwargs):
        raise AssertionError("the scoring phase decoded stored bitstreams again")

    # where the scoring phase calls it (bench.pipeline imports it by name)
    monkeypatch.setattr(bench.pipeline, "predict_rows", no_second_decode)
    capsys.readouterr()
    assert run(*base, *task, "--run-dir", str(one_pass), "--jobs", jobs) == 0
    assert _predictions(one_pass) == later
    out = capsys.readouterr().out
    assert "det AP" in out
