"""`bench report` end to end: hand-made stores with known BD answers, and a real small run."""

from __future__ import annotations

import hashlib
import io
import math
import shutil

import pandas as pd
import pytest
from PIL import Image

from bench.cli import main
from bench.report.check import describe_environment, environment_fingerprint
from bench.report.leaderboard import recorded_runs
from bench.report.points import build_points, image_set
from bench.store import ImageResult, ResultsStore
from tests.conftest import DETECTOR, FAST_SEGMENTER, shared_model

SIZES = {1: (100, 50), 2: (80, 60)}  # image id: (width, height)
JPEG = {"q10": (1000, 28.0), "q20": (1600, 31.0), "q35": (2400, 33.5), "q50": (3000, 35.0)}
WEBP = {"q10": (500, 28.0), "q25": (800, 31.0), "q45": (1200, 33.5), "q65": (1500, 35.0)}


def put(store: ResultsStore, codec: str, grid: dict, version: str = "v1", scale: float = 1.0,
        ids=(1, 2)) -> None:
    """Rows whose per-image bytes scale with the image's size; PSNR equal on every image."""
    for q, (nbytes, psnr) in grid.items():
        for i in ids:
            w, h = SIZES.get(i, (90, 40))
            b = int(nbytes * scale * w * h / 5000) * 2  # even: halving is exact
            store.put(ImageResult(codec, version, q, i, width=w, height=h, bytes=b,
                                  bpp=8 * b / (w * h), psnr=psnr, roi_psnr=psnr - 1,
                                  bg_psnr=psnr + 1, ms_ssim=1 - 10 ** (-psnr / 20)))


@pytest.fixture
def made_run(tmp_path):
    """jpeg and a 'webp' at exactly half of jpeg's bytes for the same PSNR."""
    rd = tmp_path / "made"
    with ResultsStore(rd) as store:
        put(store, "jpeg", JPEG)
        webp = {q: (JPEG[jq][0] // 2, JPEG[jq][1]) for q, jq in zip(WEBP, JPEG, strict=True)}
        put(store, "webp", webp)
    return rd


def report(*args: str) -> int:
    return main(["report", *args])


def test_known_bd_rate_through_the_command(made_run, capsys):
    assert report("--run-dir", str(made_run), "--anchor", "jpeg", "--metric", "psnr",
                  "--metric", "roi-psnr", "--format", "csv") == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    webp = table[table["codec"] == "webp"].set_index("metric")
    assert webp.loc["psnr", "bd_rate"] == pytest.approx(-50.0, abs=1e-9)
    assert webp.loc["roi-psnr", "bd_rate"] == pytest.approx(-50.0, abs=1e-9)
    assert webp.loc["psnr", "rate_overlap"] == pytest.approx(100.0)
    assert webp.loc["psnr", "monotonic"] == "yes"
    assert set(table["method"]) == {"pchip"} and set(table["images"]) == {2}
    jpeg = table[table["codec"] == "jpeg"]
    assert (jpeg["bd_rate"] == 0).all() and (jpeg["note"] == "anchor").all()


def test_text_markdown_latex_tables(made_run, capsys):
    assert report("--run-dir", str(made_run), "--metric", "psnr") == 0  # default anchor: jpeg
    out = capsys.readouterr().out
    assert "BD vs jpeg on PSNR (dB), pchip, pooled bpp, 2 images" in out
    for head in ("BD-rate (%)", "quality overlap (%)", "BD-PSNR (dB)", "rate overlap (%)",
                 "monotonic", "note"):
        assert head in out
    assert "-50.00*" in out  # best value marked
    assert report("--run-dir", str(made_run), "--format", "markdown", "--method",
                  "akima") == 0
    md = capsys.readouterr().out
    assert "| webp | 4 | **-50.00** | 100 |" in md and ", akima," in md
    assert report("--run-dir", str(made_run), "--format", "latex", "--method", "cubic") == 0
    tex = capsys.readouterr().out
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"\textbf{$-$50.00}" in tex
    assert r"\caption{BD vs jpeg on PSNR (dB), cubic" in tex


def test_low_overlap_is_flagged_and_never_best(tmp_path, capsys):
    """A BD value resting on less than 75 % overlap carries ‡ and is not marked best, even
    where it is the best number; a value on a full overlap still is."""
    rd = tmp_path / "run"
    with ResultsStore(rd) as store:
        put(store, "jpeg", JPEG)
        # half the bytes and +3 dB: the best BD-rate, but on 40 % of the quality range
        put(store, "webp", {q: (JPEG[jq][0] // 2, JPEG[jq][1] + 3)
                            for q, jq in zip(WEBP, JPEG, strict=True)})
        put(store, "hevc", {q: (b * 3 // 4, p) for q, (b, p) in JPEG.items()})  # -25 %, 100 %
    assert report("--run-dir", str(rd), "--anchor", "jpeg", "--format", "csv") == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out)).set_index("codec")
    assert table.loc["webp", "rate_overlap"] == pytest.approx(40.0)
    assert table.loc["webp", "bd_rate"] < table.loc["hevc", "bd_rate"] < 0
    assert table.loc["webp", "rate_flag"] == "‡" and pd.isna(table.loc["hevc", "rate_flag"])
    assert report("--run-dir", str(rd), "--anchor", "jpeg") == 0
    out = capsys.readouterr().out
    webp = next(ln for ln in out.splitlines() if ln.startswith("webp"))
    hevc = next(ln for ln in out.splitlines() if ln.startswith("hevc"))
    assert "‡" in webp and "*" not in webp.split("‡")[0]
    assert "-25.00*" in hevc
    assert "‡ overlap below 75 %" in out
    assert report("--run-dir", str(rd), "--anchor", "jpeg", "--format", "markdown") == 0
    md = capsys.readouterr().out
    assert "| hevc | 4 | **-25.00** |" in md
    webp_md = next(ln for ln in md.splitlines() if ln.startswith("| webp"))
    assert "‡" in webp_md and "**-" not in webp_md.split("|")[3]
    assert report("--run-dir", str(rd), "--anchor", "jpeg", "--format", "latex") == 0
    tex = capsys.readouterr().out
    assert r"\textbf{$-$25.00}" in tex and r"$^\ddagger$" in tex
    webp_tex = next(ln for ln in tex.splitlines() if ln.startswith("webp"))
    assert r"\textbf" not in webp_tex.split("&")[2]


def test_points_table_marks_no_rate_as_best(made_run, capsys):
    """The lowest bpp is not a 'best' value: only quality columns get the star."""
    assert report("--run-dir", str(made_run), "--points") == 0
    out = capsys.readouterr().out
    low = next(ln for ln in out.splitlines() if ln.startswith("webp") and " q10 " in ln)
    assert "*" not in low  # the lowest rate and the lowest quality: nothing to mark
    top = next(ln for ln in out.splitlines() if ln.startswith("jpeg") and " q50 " in ln)
    assert "35.00*" in top


def test_points_table_versions_and_common_images(tmp_path, capsys):
    rd = tmp_path / "run"
    with ResultsStore(rd) as store:
        put(store, "jpeg", JPEG, version="old", scale=3.0)
        put(store, "jpeg", JPEG, ids=(1, 2, 3))
        put(store, "webp", WEBP)
        store.put(ImageResult("webp", "v1", "q10", 3, error="CodecError: boom"))
    assert report("--run-dir", str(rd), "--points", "--format", "csv") == 0
    cap = capsys.readouterr()
    assert "jpeg: older version 'old' left out" in cap.err
    assert "1 image(s) not coded by every codec/quality left out" in cap.err
    pts = pd.read_csv(io.StringIO(cap.out))
    assert list(pts[pts["codec"] == "jpeg"]["quality"]) == list(JPEG)  # grid order
    assert set(pts["images"]) == {2} and set(pts["codec_version"]) == {"v1"}
    row = pts[(pts["codec"] == "webp") & (pts["quality"] == "q10")].iloc[0]
    w = SIZES
    b = [int(500 * w[i][0] * w[i][1] / 5000) * 2 for i in (1, 2)]
    assert row["bpp_pooled"] == pytest.approx(8 * sum(b) / sum(x * y for x, y in w.values()))
    assert row["bpp_mean"] == pytest.approx(
        sum(8 * bb / (x * y) for bb, (x, y) in zip(b, w.values(), strict=True)) / 2)
    assert row["errors"] == 1
    assert report("--run-dir", str(rd), "--points", "--images", "all", "--format",
                  "csv") == 0
    pts = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert set(pts.loc[pts["codec"] == "jpeg", "images"]) == {3}


def test_variant_points_keep_their_grid_points_order(tmp_path, capsys):
    """An ROI variant's points (``q20-b2``: grid point ``q20``, suffix ``-b2``) are ordered
    like the codec's grid, so a rate that falls from one point to the next is flagged, not
    hidden by an order made from the rates; only a name of no grid point is ordered by rate,
    with a note."""
    rd = tmp_path / "run"
    blur = {"q10-b4": (900, 27.0), "q20-b2": (2000, 30.0), "q35-b1": (1800, 32.5),
            "q50-b0.5": (2600, 34.0)}  # q20-b2 costs more than the next point
    with ResultsStore(rd) as store:
        put(store, "jpeg", JPEG)
        for q, (nbytes, psnr) in blur.items():
            for i in (1, 2):
                w, h = SIZES[i]
                store.put(ImageResult("jpeg", "blur", q, i, width=w, height=h, bytes=nbytes,
                                      bpp=8 * nbytes / (w * h), psnr=psnr, roi_psnr=psnr + 1,
                                      bg_psnr=psnr - 1, label="jpeg@roi-gt-blur"))
    assert report("--run-dir", str(rd), "--points", "--format", "csv") == 0
    cap = capsys.readouterr()
    assert "installed grid" not in cap.err
    pts = pd.read_csv(io.StringIO(cap.out))
    variant = pts[pts["codec"] == "jpeg@roi-gt-blur"].sort_values("grid_index")
    assert list(variant["quality"]) == list(blur)
    assert report("--run-dir", str(rd), "--anchor", "jpeg", "--metric", "psnr") == 0
    assert "test non-monotonic: dominated q20-b2 dropped" in capsys.readouterr().out
    with ResultsStore(rd) as store:
        for i in (1, 2):
            store.put(ImageResult("jpeg", "blur", "odd", i, width=10, height=10, bytes=10,
                                  bpp=0.8, psnr=20.0, roi_psnr=21.0, bg_psnr=19.0,
                                  label="jpeg@roi-gt-blur"))
    assert report("--run-dir", str(rd), "--points", "--format", "csv") == 0
    assert "jpeg@roi-gt-blur: odd not on the installed grid; ordered by rate" in (
        capsys.readouterr().err)


def test_report_errors_say_what_to_do(made_run, tmp_path, capsys):
    assert report("--run-dir", str(tmp_path / "nothing")) == 2
    assert "no results store" in capsys.readouterr().err
    assert not (tmp_path / "nothing").exists()
    assert report("--run-dir", str(made_run), "--anchor", "vvc") == 2
    assert "--anchor vvc: not among the codecs reported (jpeg, webp)" in capsys.readouterr().err
    assert report("--run-dir", str(made_run), "--metric", "det-ap") == 2
    assert "no detection scores in the store" in capsys.readouterr().err
    assert report("--run-dir", str(made_run), "--codec", "av1") == 2
    assert "codec(s) av1 not in" in capsys.readouterr().err


def test_no_overlap_is_nan_with_reason(tmp_path, capsys):
    rd = tmp_path / "run"
    with ResultsStore(rd) as store:
        put(store, "jpeg", JPEG)
        put(store, "webp", {q: (b, p + 20) for q, (b, p) in WEBP.items()})
    assert report("--run-dir", str(rd), "--format", "csv") == 0
    row = pd.read_csv(io.StringIO(capsys.readouterr().out)).set_index("codec").loc["webp"]
    assert math.isnan(row["bd_rate"]) and row["rate_overlap"] == 0
    assert "no overlap in metric: BD-rate undefined" in row["note"]


# ------------------------------------------------------------------ a real run
@pytest.fixture(scope="module")
def real_run(tmp_path_factory, coco_root):
    det, seg = shared_model(DETECTOR), shared_model(FAST_SEGMENTER)
    rd = tmp_path_factory.mktemp("real") / "run"
    qualities = ["jpeg:q10", "jpeg:q20", "jpeg:q50", "jpeg:q85", "webp:q10", "webp:q45",
                 "webp:q80", "webp:q95", "original:source"]
    args = ["run", "--no-progress", "--codec", "jpeg", "--codec", "webp", "--codec",
            "original", "--limit", "2", "--task", "detection", "--task", "segmentation",
            "--model", f"detection={det}", "--model", f"segmentation={seg}",
            "--data-root", str(coco_root), "--run-dir", str(rd), "--metrics", "psnr"]
    for q in qualities:
        args += ["--quality", q]
    assert main(args) == 0
    return rd, det, seg


def test_real_run_bd_table_and_points(real_run, coco_root, capsys):
    rd, det, seg = real_run
    capsys.readouterr()
    assert report("--run-dir", str(rd), "--anchor", "jpeg", "--metric", "psnr", "--metric",
                  "det-ap", "--metric", "seg-ap", "--data-root", str(coco_root)) == 0
    out = capsys.readouterr().out
    assert "BD vs jpeg on detection AP (%)" in out and "detection model " + det.name in out
    assert "BD vs jpeg on mask AP (%)" in out
    assert "uncompressed ceiling: detection AP" in out
    heads = [ln for ln in out.splitlines() if ln.startswith("codec ") and "points" in ln]
    assert len(heads) == 3
    for line in heads:
        assert "BD-rate (%)" in line and line.count("overlap (%)") == 2
        assert " monotonic " in line and line.rstrip().endswith("note")
    assert report("--run-dir", str(rd), "--points", "--format", "csv") == 0
    pts = pd.read_csv(io.StringIO(capsys.readouterr().out))
    sha = hashlib.sha256(det.read_bytes()).hexdigest()
    dets = pts[pts["task"] == "detection"]
    assert set(dets["model_sha256"]) == {sha} and set(dets["images"]) == {2}
    assert len(dets) == 9 and dets["ap"].notna().all()
    segs = pts[pts["task"] == "segmentation"]
    assert segs["mask_ap"].notna().all() and len(segs) == 9
    with ResultsStore(rd) as store:  # cached scores equal freshly computed ones
        store.db.execute("DELETE FROM scores")
        store.db.commit()
        from bench.report.points import coco_loader

        fresh = build_points(store, coco=coco_loader(str(coco_root))).frame
    pd.testing.assert_series_equal(fresh["ap"], pts["ap"], check_names=False)


def test_real_run_bootstrap_on_ap(real_run, coco_root, capsys):
    """AP re-scored on resampled images: on all images it must give the table's value (the
    report checks that before resampling), and both COCO evaluators agree."""
    rd, _, _ = real_run
    tables = []
    for evaluator in ("pycocotools", "faster-coco-eval"):
        capsys.readouterr()
        assert report("--run-dir", str(rd), "--anchor", "jpeg", "--metric", "det-ap",
                      "--metric", "seg-ap", "--bootstrap", "3", "--coco-eval", evaluator,
                      "--data-root", str(coco_root), "--format", "csv") == 0
        tables.append(pd.read_csv(io.StringIO(capsys.readouterr().out)))
    pd.testing.assert_frame_equal(tables[0], tables[1])
    webp = tables[0][tables[0]["codec"] == "webp"].set_index("metric")
    assert set(webp.index) == {"det-ap", "seg-ap"} and (webp["bootstrap"] == 3).all()
    for metric in ("det-ap", "seg-ap"):
        row = webp.loc[metric]
        if row["bd_rate_undefined"] < 3:
            assert row["bd_rate_low"] <= row["bd_rate_median"] <= row["bd_rate_high"]


def test_real_run_bootstrap_evaluates_each_draw_once(real_run, coco_root, capsys):
    """det-ap50 after det-ap reads the bbox evaluations det-ap made on the same draws: the
    same intervals as det-ap50 alone, and not one evaluation more."""
    from bench.report.bootstrap import bootstrap_bd
    from bench.report.points import coco_loader

    rd, _, _ = real_run
    rows = []
    for metrics in (["det-ap", "det-ap50"], ["det-ap50"]):
        capsys.readouterr()
        chosen = [a for m in metrics for a in ("--metric", m)]
        assert report("--run-dir", str(rd), "--anchor", "jpeg", *chosen, "--bootstrap", "4",
                      "--data-root", str(coco_root), "--format", "csv") == 0
        table = pd.read_csv(io.StringIO(capsys.readouterr().out))
        rows.append(table[table["metric"] == "det-ap50"].reset_index(drop=True))
    pd.testing.assert_frame_equal(rows[0], rows[1])
    # jpeg is the anchor and the ceiling has no curve to resample: webp's row
    assert rows[0].set_index("codec").loc["webp", "bootstrap"] == 4
    coco = coco_loader(str(coco_root))
    with ResultsStore(rd) as store:
        points = build_points(store, coco=coco)
        evaluations: dict = {}
        ap = bootstrap_bd(points, store, coco, "det-ap", "jpeg", replicates=4,
                          model_key=next(iter(points.models("detection"))),
                          evaluations=evaluations)
        made = len(evaluations)
        ap50 = bootstrap_bd(points, store, coco, "det-ap50", "jpeg", replicates=4,
                            model_key=next(iter(points.models("detection"))),
                            evaluations=evaluations)
        fresh = bootstrap_bd(points, store, coco, "det-ap50", "jpeg", replicates=4,
                             model_key=next(iter(points.models("detection"))))
    assert made > 0 and len(evaluations) == made  # det-ap50 evaluated nothing new
    assert ap50 == fresh and ap.keys() == ap50.keys()


def test_real_run_plots_and_leaderboard(real_run, tmp_path, capsys):
    rd, det, _ = real_run
    figs, board = tmp_path / "figs", tmp_path / "board"
    assert report("--run-dir", str(rd), "--plot", str(figs), "--leaderboard", str(board)) == 0
    names = sorted(p.name for p in figs.iterdir())
    for key in ("psnr", "det-ap", "det-ap50", "seg-ap"):
        assert f"rd_{key}.png" in names and f"rd_{key}.pdf" in names
    paper = tmp_path / "paper"  # --metric limits the figures
    assert report("--run-dir", str(rd), "--plot", str(paper), "--plot-style", "paper",
                  "--metric", "det-ap", "--metric", "psnr") == 0
    assert sorted(p.name for p in paper.iterdir()) == [
        "rd_det-ap.pdf", "rd_det-ap.png", "rd_psnr.pdf", "rd_psnr.png"]
    with Image.open(paper / "rd_det-ap.png") as im:
        assert im.size[0] == 1050  # 3.5 in at 300 dpi
    with Image.open(figs / "rd_det-ap.png") as im:
        assert im.size[0] > 600 and im.size[1] > 400
    assert (figs / "rd_det-ap.pdf").read_bytes().startswith(b"%PDF")
    lb = pd.read_csv(board / "leaderboard.csv")
    assert list(lb["codec"])[-1] == "original" and lb["rank"].isna().iloc[-1]
    assert {"bd_rate_det_ap", "overlap_det_ap", "monotonic_det_ap", "bd_rate_psnr",
            "codec_version", "detection_model_sha256"} <= set(lb.columns)
    assert set(lb["detection_model_sha256"]) == {hashlib.sha256(det.read_bytes()).hexdigest()}
    md = (board / "leaderboard.md").read_text()
    assert "| rank | codec |" in md and det.name in md
    assert "bench report --run-dir runs/leaderboard --leaderboard results/" in md
    # where the rows were made: the run's command under the machine it ran on (this one)
    here = describe_environment(environment_fingerprint())
    assert f"- machine A: {here}\n" in md and "machine B" not in md
    assert "# machine A\nbench run --no-progress --codec jpeg --codec webp" in md


def test_recorded_runs_name_each_machine_once():
    zen3 = {"cpu": {"model": "EPYC", "id": "AuthenticAMD 25/1", "arch": "x86_64",
                    "flags": {"avx2": True, "avx512f": False}}, "packages": {"torch": "2.5"}}
    zen4 = {"cpu": {"model": "EPYC", "id": "AuthenticAMD 25/17", "arch": "x86_64",
                    "flags": {"avx2": True, "avx512f": True}}, "packages": {"torch": "2.5"}}
    lines = recorded_runs([("bench run --codec jpeg", []), ("bench run --codec ggm",
                                                            [zen3, zen4]),
                           ("bench run --codec vvc", [zen4])])
    assert lines[2:4] == [
        "- machine A: EPYC (AuthenticAMD 25/1, x86_64; flags: avx2); torch 2.5",
        "- machine B: EPYC (AuthenticAMD 25/17, x86_64; flags: avx2 avx512f); torch 2.5"]
    assert lines[4:6] == ["", "```bash"]
    assert lines[6:-2] == ["# machine not recorded (run before bench run kept it)",
                           "bench run --codec jpeg", "# machine A, B", "bench run --codec ggm",
                           "# machine B", "bench run --codec vvc"]
    assert "records no commands" in recorded_runs([])[0]


# ------------------------------------------------------------------ --with-points
def test_with_points_ranks_a_new_run_against_published_points(made_run, tmp_path, capsys):
    """A run of webp alone, reported with jpeg's points from a points file, gives the BD
    table of the run that held both; a codec in both comes from the run."""
    board = tmp_path / "board"
    assert report("--run-dir", str(made_run), "--anchor", "jpeg", "--leaderboard",
                  str(board), "--format", "csv") == 0
    both = pd.read_csv(io.StringIO(capsys.readouterr().out)).set_index("codec")
    published = board / "leaderboard_points.csv"
    assert set(pd.read_csv(published)["image_set"]) == {image_set([1, 2])}
    alone = tmp_path / "alone"
    with ResultsStore(alone) as store:
        webp = {q: (JPEG[jq][0] // 2, JPEG[jq][1]) for q, jq in zip(WEBP, JPEG, strict=True)}
        put(store, "webp", webp)
    assert report("--run-dir", str(alone), "--with-points", str(published), "--anchor",
                  "jpeg", "--format", "csv") == 0
    cap = capsys.readouterr()
    merged = pd.read_csv(io.StringIO(cap.out)).set_index("codec")
    assert merged.loc["webp", "bd_rate"] == pytest.approx(both.loc["webp", "bd_rate"])
    assert merged.loc["webp", "bd_rate"] == pytest.approx(-50.0, abs=1e-9)
    assert f"jpeg: points from {published}" in cap.err
    assert f"webp: this run's points, not those of {published}" in cap.err
    # the leaderboard made from the run plus the points file is the one made from both
    again = tmp_path / "again"
    assert report("--run-dir", str(alone), "--with-points", str(published), "--anchor", "jpeg",
                  "--leaderboard", str(again)) == 0
    first, second = (pd.read_csv(d / "leaderboard.csv") for d in (board, again))
    pd.testing.assert_frame_equal(first, second)
    md = (again / "leaderboard.md").read_text()
    assert f"--with-points {published}" in md
    # jpeg's row was not made by this store's commands: the file says where it came from
    assert f"- `{published}`: `jpeg`\n" in md and "`webp`" not in md.split("(`--with-points`)")[1]
    # read and written again, the points file is the same text: no float drifts a bit
    assert (again / "leaderboard_points.csv").read_text() == published.read_text()


def test_with_points_refuses_what_cannot_be_compared(made_run, tmp_path, capsys):
    points = tmp_path / "jpeg.csv"
    assert report("--run-dir", str(made_run), "--codec", "jpeg", "--points", "--format", "csv",
                  "--output", str(points)) == 0
    other = tmp_path / "other"  # webp on images 1 and 3: another image set
    with ResultsStore(other) as store:
        put(store, "webp", WEBP, ids=(1, 3))
    capsys.readouterr()
    assert report("--run-dir", str(other), "--with-points", str(points)) == 2
    err = capsys.readouterr().err
    assert "its points are over the image set 2:" in err and "the same images" in err
    assert report("--run-dir", str(made_run), "--with-points", str(tmp_path / "no.csv")) == 2
    assert "no.csv: no such file" in capsys.readouterr().err
    bd = tmp_path / "bd.csv"  # a BD table is not a points file
    assert report("--run-dir", str(made_run), "--anchor", "jpeg", "--format", "csv",
                  "--output", str(bd)) == 0
    capsys.readouterr()
    assert report("--run-dir", str(made_run), "--with-points", str(bd)) == 2
    assert "not a points CSV with image set (missing column(s)" in capsys.readouterr().err
    good = pd.read_csv(points, dtype=str, keep_default_na=False)
    for name, edit, message in (
            ("twice", lambda f: pd.concat([f, f.iloc[:1]]), "rows repeat a (codec, quality"),
            ("short", lambda f: f.assign(images="1"), "over fewer than the 2 images"),
            ("count", lambda f: f.assign(errors="0.5"), "column errors: '0.5' is not a count"),
            ("float", lambda f: f.assign(psnr="x"), "column psnr:")):
        bad = tmp_path / f"{name}.csv"
        edit(good).to_csv(bad, index=False)
        assert report("--run-dir", str(made_run), "--codec", "webp", "--with-points",
                      str(bad)) == 2
        assert message in capsys.readouterr().err, name
    for extra in (["--html", str(tmp_path / "h")], ["--images", "all"]):
        assert report("--run-dir", str(made_run), "--with-points", str(points), *extra) == 2
        assert "--with-points" in capsys.readouterr().err
    assert report("--run-dir", str(made_run), "--with-points", str(points), "--codec",
                  "av1") == 2
    assert "none of --codec av1 is in" in capsys.readouterr().err
    assert report("--run-dir", str(made_run), "--with-points", str(points), "--codec",
                  "webp", "--codec", "vvc") == 2
    assert "codec(s) vvc neither in" in capsys.readouterr().err


def test_with_points_checks_the_task_models(real_run, tmp_path, capsys):
    """Real detections: jpeg's points from a file rank webp exactly as the store does; a
    file scored by another model is refused."""
    rd, det, _ = real_run
    points = tmp_path / "jpeg.csv"
    assert report("--run-dir", str(rd), "--codec", "jpeg", "--points", "--format", "csv",
                  "--output", str(points)) == 0
    capsys.readouterr()
    assert report("--run-dir", str(rd), "--codec", "webp", "--codec", "jpeg", "--anchor",
                  "jpeg", "--metric", "det-ap", "--format", "csv") == 0
    direct = pd.read_csv(io.StringIO(capsys.readouterr().out)).set_index("codec")
    assert not math.isnan(direct.loc["webp", "bd_rate"])
    webp_only = tmp_path / "webp-only"  # the same run without jpeg's rows
    shutil.copytree(rd, webp_only)
    with ResultsStore(webp_only) as store:
        for table in ("results", "predictions"):
            store.db.execute(f"DELETE FROM {table} WHERE codec != 'webp'")
        store.db.commit()
    assert report("--run-dir", str(webp_only), "--with-points", str(points), "--anchor",
                  "jpeg", "--metric", "det-ap", "--format", "csv") == 0
    merged = pd.read_csv(io.StringIO(capsys.readouterr().out)).set_index("codec")
    assert merged.loc["webp", "bd_rate"] == pytest.approx(direct.loc["webp", "bd_rate"])
    tampered = tmp_path / "tampered.csv"
    frame = pd.read_csv(points, dtype=str, keep_default_na=False)
    frame.loc[frame["task"] == "detection", "model_sha256"] = "0" * 64
    frame.to_csv(tampered, index=False)
    assert report("--run-dir", str(webp_only), "--with-points", str(tampered), "--metric",
                  "det-ap") == 2
    err = capsys.readouterr().err
    assert "detection is scored by" in err and "000000000000" in err and det.name in err
