"""Codecs are loaded and warmed up before any timed encode; the load time is stored apart.

The issue this guards against: a codec that loads its model on first use (``ggm``) charged
the load to the encode time of the first image it coded (4.2 s instead of 2.3 s at q1).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
import time

import pytest

from bench.cli import main
from bench.registry import create_codec
from bench.store import ImageResult, ResultsStore

#: A third-party codec package: ``lazy`` needs its load() hook before it can encode and does
#: 0.5 s of lazy work on its first encode; ``broken-load`` cannot load at all.
PLUGIN = textwrap.dedent("""
    import time
    import numpy as np
    from bench.codecs import Codec, CodecError, CodecUnavailable

    class Lazy(Codec):
        name = "lazy"
        qualities = ("a", "b")

        def __init__(self):
            self.loaded = False
            self.encodes = 0

        def version(self):
            return "lazy-1"

        def load(self):
            time.sleep(0.3)
            self.loaded = True

        def encode(self, image, roi, quality):
            if not self.loaded:
                raise CodecError("encode before load()")
            self.encodes += 1
            if self.encodes == 1:  # what a codec may still do on its first call
                time.sleep(0.5)
            h, w, _ = image.shape
            return h.to_bytes(4, "big") + w.to_bytes(4, "big") + image.tobytes()

        def decode(self, data):
            h, w = int.from_bytes(data[:4], "big"), int.from_bytes(data[4:8], "big")
            return np.frombuffer(data[8:], np.uint8).reshape(h, w, 3).copy()

    class BrokenLoad(Lazy):
        name = "broken-load"

        def version(self):
            return "broken-load-1"

        def load(self):
            raise CodecUnavailable("weights gone")

    class Crashy(Lazy):  # kills its process on a 1x1 picture, as a native segfault would
        name = "crashy"

        def version(self):
            return "crashy-1"

        def load(self):
            self.loaded = True

        def encode(self, image, roi, quality):
            if image.shape[:2] == (1, 1):
                import os
                gate = os.environ.get("CRASHY_GATE")
                if gate:  # die only once the run has taken a first row (see the test)
                    while not os.path.exists(os.path.join(gate, "go")):
                        time.sleep(0.01)
                    open(os.path.join(gate, "died"), "w").close()
                os._exit(3)
            self.encodes = 2  # no first-call delay
            return super().encode(image, roi, quality)
""")


def _plugin_site(tmp_path):
    """A folder holding an installed-distribution record of PLUGIN and its module."""
    site = tmp_path / "site"
    dist = site / "lazycodec-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lazycodec\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[bench.codecs]\nlazy = lazycodec:Lazy\nbroken-load = lazycodec:BrokenLoad\n"
        "crashy = lazycodec:Crashy\n")
    (site / "lazycodec.py").write_text(PLUGIN)
    return site


def _run_with_plugin(tmp_path, *args: str) -> subprocess.CompletedProcess:
    """``bench run ARGS`` in a fresh process that has PLUGIN installed (:func:`_plugin_site`)."""
    site = _plugin_site(tmp_path)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get(
        "PYTHONPATH", "")]), BENCH_PROGRESS="0")
    return subprocess.run([sys.executable, "-m", "bench", "run", *args], env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("jobs", [1, 2])
def test_load_hook_and_first_call_are_not_timed(tiny_coco, tmp_path, jobs):
    """Each worker calls load() and warms the codec before its first timed encode, stores
    that time as load_s on its first row only, and a codec that cannot load gives error rows
    while the run goes on."""
    rd = tmp_path / "run"
    proc = _run_with_plugin(tmp_path, "--codec", "lazy", "--codec", "broken-load", "--codec",
                            "jpeg", "--quality", "a", "--quality", "b", "--quality", "q50",
                            "--data-root", str(tiny_coco), "--run-dir", str(rd), "--metrics",
                            "psnr", "--jobs", str(jobs))
    assert proc.returncode == 1, proc.stderr  # broken-load's rows failed; others stored
    with ResultsStore(rd) as store:
        lazy = store.results("lazy")
        broken = store.results("broken-load")
        jpeg = store.results("jpeg")
    assert len(lazy) == 8 and all(r.ok for r in lazy), [r.error for r in lazy]
    loaded = [r.load_s for r in lazy if r.load_s is not None]
    assert 1 <= len(loaded) <= jobs  # one per worker process that coded a lazy unit
    assert all(s >= 0.8 for s in loaded), loaded  # load() 0.3 s + first encode 0.5 s
    assert max(r.encode_s for r in lazy) < 0.4, [r.encode_s for r in lazy]
    assert len(broken) == 8 and all(
        "loading the codec failed" in r.error and "weights gone" in r.error for r in broken)
    assert all(r.load_s is None for r in broken)
    assert len(jpeg) == 4 and all(r.ok for r in jpeg)
    assert "codec load and warm-up (not in the encode times): lazy" in proc.stderr


def test_a_worker_that_dies_fails_only_the_image_that_killed_it(tiny_coco, tmp_path):
    """A worker process that dies breaks the whole pool and every image in flight with it;
    the images caught in it are coded again one at a time, so only the one that kills its
    worker (tiny_coco's 1x1 image 4) becomes error rows, and the run goes on to exit 1."""
    rd = tmp_path / "run"
    proc = _run_with_plugin(tmp_path, "--codec", "crashy", "--codec", "jpeg", "--quality", "a",
                            "--quality", "b", "--quality", "q50", "--data-root",
                            str(tiny_coco), "--run-dir", str(rd), "--metrics", "psnr",
                            "--jobs", "2")
    assert proc.returncode == 1, proc.stderr
    with ResultsStore(rd) as store:
        crashy = {(r.quality, r.image_id): r for r in store.results("crashy")}
        jpeg = store.results("jpeg")
    assert len(crashy) == 8 and len(jpeg) == 4 and all(r.ok for r in jpeg)
    failed = sorted(k for k, r in crashy.items() if not r.ok)
    assert failed == [("a", 4), ("b", 4)], {k: r.error for k, r in crashy.items()}
    assert all("worker process died" in crashy[k].error for k in failed)


def test_a_worker_that_dies_while_a_row_is_committed_does_not_stop_the_run(
        tiny_coco, tmp_path, monkeypatch):
    """The race behind a rare "process pool is not usable anymore" exit: a worker dies
    while the run is busy committing another image's rows, so the pool is broken before
    the run hands it the next image. That image is kept for a new pool, and only the image
    that killed its worker fails. The crash is made to happen inside the commit: the dying
    image waits for the first committed row, and that commit waits for the death."""
    from bench.runner import RunConfig, execute, plan_units

    site = _plugin_site(tmp_path)
    monkeypatch.syspath_prepend(str(site))  # the spawned workers find crashy through it
    gate = tmp_path / "gate"
    gate.mkdir()
    monkeypatch.setenv("CRASHY_GATE", str(gate))

    def on_row(row):
        if not (gate / "go").exists():
            (gate / "go").touch()
            deadline = time.monotonic() + 120
            while not (gate / "died").exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.5)  # for the pool to see its worker's death

    # this process has read its entry points already (once per process): load the class
    spec = importlib.util.spec_from_file_location("lazycodec_here", site / "lazycodec.py")
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    codecs = {"crashy": plugin.Crashy(), "jpeg": create_codec("jpeg")}
    cfg = RunConfig(data_root=str(tiny_coco), run_dir=str(tmp_path / "run"))
    with ResultsStore(tmp_path / "run") as store:
        # crashy's four images fill the pool (2 jobs, 4 in flight); jpeg's wait for it
        units = plan_units(store, codecs, {"crashy": ("a", "b"), "jpeg": ("q50",)},
                           [1, 2, 3, 4])
        assert [u.codec for u in units[:4]] == ["crashy"] * 4 and len(units) == 8
        assert execute(units, cfg, store, jobs=2, on_row=on_row) == 12
        rows = {(r.quality, r.image_id): r for r in store.results("crashy")}
        jpeg = store.results("jpeg")
    assert (gate / "died").exists()  # the crash did happen inside the first commit
    assert len(jpeg) == 4 and all(r.ok for r in jpeg), [r.error for r in jpeg]
    failed = sorted(k for k, r in rows.items() if not r.ok)
    assert failed == [("a", 4), ("b", 4)], {k: r.error for k, r in rows.items()}
    assert all("worker process died" in rows[k].error for k in failed)


@pytest.mark.slow
def test_ggm_first_encode_excludes_model_loading(tiny_coco, tmp_path, capsys):
    """The real case: ggm loads its network lazily; none of it lands in an encode time."""
    if create_codec("ggm").availability():
        pytest.skip(create_codec("ggm").availability())
    rd = tmp_path / "run"
    assert main(["run", "--no-progress", "--codec", "ggm", "--quality", "q1", "--quality",
                 "q8", "--image-ids", "1,2", "--data-root", str(tiny_coco), "--run-dir",
                 str(rd), "--metrics", "psnr"]) == 0
    assert "codec load and warm-up (not in the encode times): ggm" in capsys.readouterr().err
    with ResultsStore(rd) as store:
        rows = store.results("ggm")
    assert len(rows) == 4 and all(r.ok for r in rows)
    first = [r for r in rows if r.load_s is not None]
    assert len(first) == 1 and (first[0].image_id, first[0].quality) == (1, "q1")
    # loading the network takes ≥ 0.2 s even with torch imported; coding 48×64 ~ 0.03 s
    assert first[0].load_s > max(r.encode_s for r in rows), [
        (r.quality, r.image_id, r.encode_s, r.load_s) for r in rows]


def test_load_s_round_trips_and_is_added_to_older_stores(tmp_path):
    """load_s is stored and read back; a store made before it gets the column in place."""
    import sqlite3

    old = tmp_path / "old"
    old.mkdir()
    with sqlite3.connect(old / "results.sqlite") as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        db.execute("INSERT INTO meta VALUES ('schema', '1')")
        db.execute("CREATE TABLE results (codec, codec_version, quality, image_id, file_name, "
                   "width, height, bytes, bpp, psnr, roi_psnr, bg_psnr, ms_ssim, encode_s, "
                   "decode_s, sha256, notes, error, command, bitstream, label TEXT, "
                   "created REAL, PRIMARY KEY (codec, codec_version, quality, image_id))")
        db.execute("INSERT INTO results (codec, codec_version, quality, image_id, created) "
                   "VALUES ('jpeg', 'v', 'q5', 1, 0.0)")
    with ResultsStore(old) as store:
        store.put(ImageResult("jpeg", "v", "q50", 1, load_s=1.25))
        rows = {r.quality: r for r in store.results()}
        assert store.done("jpeg", "v") == {("q5", 1), ("q50", 1)}
    assert rows["q50"].load_s == 1.25 and rows["q5"].load_s is None
