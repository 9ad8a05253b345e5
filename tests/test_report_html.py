"""`bench report --html`: the page of a small real run, checked in headless Chromium.

The run is real (JPEG, WebP, the uncompressed ceiling and the learned codec under a label,
``ggm@roi-none``, on three shared COCO images, detection and segmentation scored with real
models). The browser test opens the report from the file system in the system's Chromium
(``tests/browser.py``: Debian's ``chromium``; nothing is installed by the test, which skips
without a browser unless ``$BENCH_REQUIRE_BROWSER`` is set, as in CI) and checks that the
BD table, every chart and the gallery are there, that the page logged no error and asked
for nothing outside the report folder, and that its controls work under real clicks.

``BENCH_REPORT_RUN=runs/leaderboard BENCH_REPORT_SCREENSHOT=docs/report-html.png`` makes
:func:`test_standard_run_report` check the standard run's report and write the README's
screenshots.
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import shutil
import time
from pathlib import Path

import pytest
from PIL import Image

from bench.cli import main
from bench.report.check import describe_environment, environment_fingerprint
from bench.report.gallery import (
    CROP_MAX,
    CROP_MIN,
    crop_box,
    nearest_quality,
    outline,
    parse_images,
    select_images,
)
from bench.report.html import AXES
from bench.store import ResultsStore
from tests.browser import Browser, find_browser
from tests.conftest import DETECTOR, FAST_SEGMENTER, shared_model

READY = "window.benchReport && window.benchReport.ready"
#: What the page is checked for, as one JSON value.
PAGE_FACTS = """(() => {
  const charts = Array.from(document.querySelectorAll('#curves .vega')).map(d => ({
    metric: d.dataset.metric,
    symbols: d.querySelectorAll('svg .mark-symbol path').length,
    lines: d.querySelectorAll('svg .mark-line path').length}));
  const imgs = Array.from(document.querySelectorAll('#gallery img'));
  return {
    charts,
    state: window.benchReport,
    bdRows: Array.from(document.querySelectorAll('#bd-summary tbody tr')).map(
      r => r.cells[0].textContent),
    bdHeads: Array.from(document.querySelectorAll('#bd-summary thead th')).map(
      h => h.textContent),
    tiles: Array.from(document.querySelectorAll('#gallery .gset:not([hidden]) .tile')).map(
      t => t.dataset.label + ' ' + t.dataset.quality),
    images: imgs.length,
    broken: imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src),
    boxes: document.querySelectorAll('#gallery .dets rect').length,
    outlines: document.querySelectorAll('#gallery image.roi').length,
    provenance: document.getElementById('provenance').textContent,
  };
})()"""


def browser_or_skip() -> str:
    """The Chromium binary, or skip (fail where ``$BENCH_REQUIRE_BROWSER`` is set)."""
    exe = find_browser()
    if exe is None:
        reason = ("no Chromium found (install Debian's `chromium` package, or set "
                  "$BENCH_CHROMIUM to a Chromium binary)")
        if os.environ.get("BENCH_REQUIRE_BROWSER"):
            pytest.fail(reason + "; $BENCH_REQUIRE_BROWSER is set")
        pytest.skip(reason)
    return exe


def outside(requests: list[str]) -> list[str]:
    """The requests that left the report folder's file system."""
    return [u for u in requests if not u.startswith(("file:", "data:", "blob:", "about:"))]


@pytest.fixture(scope="module")
def html_run(tmp_path_factory, coco_root):
    """A small real run: three codecs and the ceiling, one of them under a label."""
    det, seg = shared_model(DETECTOR), shared_model(FAST_SEGMENTER)
    rd = tmp_path_factory.mktemp("html") / "run"
    common = ["--no-progress", "--limit", "3", "--task", "detection", "--task",
              "segmentation", "--model", f"detection={det}", "--model",
              f"segmentation={seg}", "--data-root", str(coco_root), "--run-dir", str(rd)]
    args = ["run", "--codec", "jpeg", "--codec", "webp", "--codec", "original"]
    for q in ("jpeg:q10", "jpeg:q50", "webp:q10", "webp:q80", "original:source"):
        args += ["--quality", q]
    assert main(args + common) == 0
    assert main(["run", "--codec", "ggm", "--roi", "none", "--quality", "ggm:q1",
                 "--quality", "ggm:q5"] + common) == 0
    return rd


def chosen(rd: Path, targets: list[float]) -> list[tuple[str, str]]:
    """(label, quality) each codec shows at each target, by the gallery's own rule."""
    from bench.report.points import build_points, is_ceiling

    with ResultsStore(rd) as store:
        points = build_points(store)
    return [(c, nearest_quality(points, c, t)[0]) for t in targets for c in points.codecs()
            if not is_ceiling(c)]


def build(rd: Path, out: Path, coco_root: Path, *extra: str) -> None:
    assert main(["report", "--run-dir", str(rd), "--html", str(out), "--data-root",
                 str(coco_root), *extra]) == 0


def check_page(browser: Browser, index: Path) -> dict:
    """Load a report, assert what every report must show, return the page's facts."""
    res = browser.load(index.resolve().as_uri(), ready=READY, check=PAGE_FACTS)
    assert res.ready, f"the page never became ready: {res.checks}"
    assert res.errors == [], res.errors
    assert outside(res.requests) == [], "the page reached outside its folder"
    facts = res.checks
    assert facts["state"]["errors"] == [] and facts["state"]["charts"] == len(facts["charts"])
    for chart in facts["charts"]:
        assert chart["symbols"] > 0 and chart["lines"] > 0, chart
    assert facts["broken"] == [] and facts["images"] > 0
    return facts


@pytest.mark.slow
def test_report_in_headless_chromium(html_run, coco_root, tmp_path):
    exe = browser_or_skip()
    out = tmp_path / "report"
    t0 = time.perf_counter()
    build(html_run, out, coco_root)
    built = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"report of 3 images, 4 codecs: {size / 1e6:.2f} MB, built in {built:.1f} s")
    with Browser(exe) as browser:
        facts = check_page(browser, out / "index.html")
        # the BD table: every codec label, the ceiling pinned last, one column per axis
        assert facts["bdRows"][-1] == "original"
        assert sorted(facts["bdRows"][:-1]) == ["ggm@roi-none", "jpeg", "webp"]
        assert "BD-rate detection AP (%)" in facts["bdHeads"]
        assert "BD-rate mask AP (%)" in facts["bdHeads"]
        # a chart per metric of the run, in the page's order
        assert [c["metric"] for c in facts["charts"]] == list(AXES)
        # the gallery: three images, the original and each codec at its point nearest 0.3
        near = chosen(html_run, [0.3])
        assert facts["tiles"] == (["original source"] + [f"{c} {q}" for c, q in near]) * 3
        assert ("jpeg", "q10") in near
        assert facts["images"] == 3 * 4 * 2  # full view and crop of each
        assert facts["boxes"] > 0 and facts["outlines"] == 3 * 4 * 2
        prov = facts["provenance"]
        assert "bench run --codec ggm --roi none" in prov and "bench report --run-dir" in prov
        sha = hashlib.sha256(shared_model(DETECTOR).read_bytes()).hexdigest()
        assert DETECTOR in prov and sha in prov
        assert "3 images" in prov

        # controls, under real clicks: the ROI outline off and on again
        roi_shown = "getComputedStyle(document.querySelector('#gallery image.roi')).display"
        browser.click("document.getElementById('show-roi')")
        assert browser.evaluate(roi_shown) == "none"
        browser.click("document.getElementById('show-roi')")
        assert browser.evaluate(roi_shown) != "none"
        browser.click("document.getElementById('show-dets')")
        assert browser.evaluate("getComputedStyle(document.querySelector("
                                "'#gallery .dets')).display") == "none"
        # sorting by codec name, twice: ascending then descending, the ceiling kept last
        first_col = ("Array.from(document.querySelectorAll('#bd-summary tbody tr'))"
                     ".map(r => r.cells[0].textContent)")
        browser.click("document.querySelector('#bd-summary thead th')")
        assert browser.evaluate(first_col) == ["ggm@roi-none", "jpeg", "webp", "original"]
        browser.click("document.querySelector('#bd-summary thead th')")
        assert browser.evaluate(first_col) == ["webp", "jpeg", "ggm@roi-none", "original"]
        # sorting by a BD-rate column: by value, ascending, cells without a value last
        browser.click("document.querySelectorAll('#bd-summary thead th')[2]")
        values = browser.evaluate(
            "Array.from(document.querySelectorAll('#bd-summary tbody tr:not([data-pin])'))"
            ".map(r => r.cells[2].dataset.v)")
        numbers = [float(v) for v in values if v]
        assert numbers == sorted(numbers) and len(numbers) >= 2
        assert values == [v for v in values if v] + [v for v in values if not v]
        # from a ringed point on the PSNR curve to its pictures in the gallery
        ringed = ("Array.from(document.querySelectorAll('[data-metric=psnr] .mark-symbol "
                  "path')).find(p => p.__data__ && p.__data__.datum && "
                  "p.__data__.datum.gallery && p.__data__.datum.codec === 'jpeg')")
        browser.click(ringed)
        flashed = browser.evaluate("Array.from(document.querySelectorAll('.tile.flash'))"
                                   ".map(t => t.dataset.label + ' ' + t.dataset.quality)")
        assert flashed == ["jpeg q10"] * 3
        assert "jpeg q10" in browser.evaluate(
            "document.getElementById('gallery-status').textContent")
        browser.evaluate("window.scrollTo(0, 0)")
        shot = browser.screenshot(tmp_path / "report.png", height=1600)
    with Image.open(shot) as im:
        assert im.size == (1400, 1600)
        low, high = im.convert("L").getextrema()
        assert high - low > 100  # not a blank page


@pytest.mark.slow
def test_browser_check_sees_errors_and_requests(tmp_path):
    """The checks above can fail: a page with an exception, a console error, a missing
    file and a request to the network is reported as such."""
    exe = browser_or_skip()
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><body><img src="missing.png">'
                    '<img src="http://127.0.0.1:9/x.png">'
                    '<script>console.error("bad thing"); window.done = true;'
                    'throw new Error("boom");</script></body></html>')
    with Browser(exe) as browser:
        res = browser.load(page.as_uri(), ready="window.done")
    assert res.ready
    text = "\n".join(res.errors)
    assert "boom" in text and "bad thing" in text and "missing.png" in text
    assert outside(res.requests) == ["http://127.0.0.1:9/x.png"]


def test_html_files_are_self_contained(html_run, coco_root, tmp_path):
    """Every file the page names is in the report folder; nothing is fetched from a CDN."""
    out = tmp_path / "report"
    build(html_run, out, coco_root, "--html-images", "2", "--html-bpp", "0.3",
          "--html-bpp", "0.8", "--metric", "psnr", "--metric", "det-ap")
    page = (out / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="([^"#]+)"', page)
    assert refs and all(not r.startswith(("http:", "https:", "//")) for r in refs)
    for ref in refs:
        assert (out / ref).is_file(), ref
    assert "vegaEmbed" in (out / "assets" / "vega.js").read_text()[-2000:]
    # --metric limits the curves; two target rates give two sets of pictures
    assert page.count('class="vega"') == 2
    here = html.escape(describe_environment(environment_fingerprint()))
    assert page.count(f"<p>ran on: {here}</p>") == 2  # under each of the run's commands
    assert page.count('class="gset"') == 2 and ' ≈ 0.8 bpp' in page
    webp = [p for p in (out / "img").rglob("*.webp") if "-crop" not in p.name]
    assert len(webp) == 2 * (1 + len(set(chosen(html_run, [0.3, 0.8]))))  # each point once
    with Image.open(next(p for p in (out / "img").rglob("*-crop.webp"))) as im:
        assert CROP_MIN <= im.size[0] == im.size[1] <= CROP_MAX
    # a second build into the same folder leaves no stale pictures behind
    build(html_run, out, coco_root, "--html-images", "1")
    assert len(list((out / "img").iterdir())) == 1


def test_single_codec_needs_no_anchor(html_run, coco_root, tmp_path, capsys):
    """--points, --plot and --html work on one codec with no default anchor."""
    rd = str(html_run)
    assert main(["report", "--run-dir", rd, "--codec", "webp"]) == 2
    assert "no default anchor" in capsys.readouterr().err
    assert main(["report", "--run-dir", rd, "--codec", "webp", "--points"]) == 0
    assert "webp" in capsys.readouterr().out
    figs = tmp_path / "figs"
    assert main(["report", "--run-dir", rd, "--codec", "webp", "--plot", str(figs),
                 "--metric", "psnr"]) == 0
    err = capsys.readouterr().err
    assert "no BD table: no default anchor" in err
    assert sorted(p.name for p in figs.iterdir()) == ["rd_psnr.pdf", "rd_psnr.png"]
    out = tmp_path / "report"
    build(html_run, out, coco_root, "--codec", "webp", "--html-images", "1")
    page = (out / "index.html").read_text()
    assert "No BD table: no default anchor" in page
    assert page.count('class="tile"') == 2 and not (out / "data" / "bd.csv").exists()


def test_run_records_its_command(html_run):
    with ResultsStore(html_run) as store:
        commands, machines = store.commands(), store.command_machines()
    assert len(commands) == 2
    assert commands[0].startswith("bench run --codec jpeg --codec webp --codec original")
    assert commands[1].startswith("bench run --codec ggm --roi none")
    assert machines == {c: [environment_fingerprint()] for c in commands}


def test_html_options_are_checked(html_run, coco_root, tmp_path, capsys):
    rd = str(html_run)
    assert main(["report", "--run-dir", rd, "--html", str(tmp_path / "r"), "--html-images",
                 "six"]) == 2
    assert "--html-images 'six': give a count" in capsys.readouterr().err
    assert main(["report", "--run-dir", rd, "--html", str(tmp_path / "r"), "--html-bpp",
                 "0"]) == 2
    assert "--html-bpp: a target rate must be positive" in capsys.readouterr().err
    assert main(["report", "--run-dir", rd, "--html", str(tmp_path / "r"), "--html-images",
                 "1,", "--data-root", str(coco_root)]) == 0
    assert "No gallery: --html-images: image(s) 1 not among the run's 3 images" in (
        html.unescape((tmp_path / "r" / "index.html").read_text()))


def test_gallery_pictures_come_from_kept_recons_or_checked_decoding(coco_root, tmp_path):
    """A --keep-recon PNG is shown without decoding; without it the bitstream is decoded,
    and a stored version that is not the installed codec's is refused with the reason."""
    rd = tmp_path / "run"
    assert main(["run", "--no-progress", "--codec", "jpeg", "--quality", "q10", "--quality",
                 "q50", "--limit", "1", "--metrics", "psnr", "--keep-recon", "--data-root",
                 str(coco_root), "--run-dir", str(rd)]) == 0
    with ResultsStore(rd) as store:  # the bitstreams are gone: only the PNGs can show them
        store.db.execute("UPDATE results SET bitstream = NULL")
        store.db.commit()
    out = tmp_path / "report"
    build(rd, out, coco_root, "--html-images", "1")
    page = html.unescape((out / "index.html").read_text())
    assert page.count('class="tile"') == 2 and "no picture" not in page
    shutil.rmtree(rd / "recon")
    build(rd, out, coco_root, "--html-images", "1")
    page = html.unescape((out / "index.html").read_text())
    assert "no picture: the store holds no bitstream for it" in page

    rd2 = tmp_path / "run2"  # decoded from the store, then a version the codec is not
    assert main(["run", "--no-progress", "--codec", "jpeg", "--quality", "q10", "--limit",
                 "1", "--metrics", "psnr", "--data-root", str(coco_root), "--run-dir",
                 str(rd2)]) == 0
    build(rd2, out, coco_root, "--html-images", "1")
    page = (out / "index.html").read_text()
    assert "no picture" not in page and len(list((out / "img").rglob("*.webp"))) == 4
    with ResultsStore(rd2) as store:
        store.db.execute("UPDATE results SET codec_version = 'jpeg-from-elsewhere'")
        store.db.commit()
    build(rd2, out, coco_root, "--html-images", "1")
    page = html.unescape((out / "index.html").read_text())
    assert "the store holds 'jpeg-from-elsewhere'; its bitstreams are not decoded" in page


# ------------------------------------------------------------------ gallery parts
def test_parse_images():
    assert parse_images(None) == 6 and parse_images("4") == 4 and parse_images("0") == 0
    assert parse_images("139,285") == [139, 285] and parse_images("139,") == [139]
    for bad in ("-1", "x", "1,b"):
        with pytest.raises(ValueError):
            parse_images(bad)


def test_select_images_spreads_over_coverage():
    coverage = {i: c for i, c in zip(range(10, 20), [0.0, .9, .1, .5, .3, .7, .2, .8, .4, .6],
                                      strict=True)}
    picked = select_images(coverage, 3)
    assert [coverage[i] for i in picked] == [0.0, 0.4, 0.9]  # lowest, middle, highest
    assert select_images(coverage, 20) == sorted(coverage, key=coverage.get)
    assert select_images(coverage, 0) == [] and len(select_images(coverage, 1)) == 1


def test_nearest_quality_in_log_rate(html_run):
    from bench.report.points import build_points

    with ResultsStore(html_run) as store:
        points = build_points(store)
    rows = points.frame.drop_duplicates(["codec", "quality"]).set_index(["codec", "quality"])
    q10, q50 = rows.loc[("jpeg", "q10"), "bpp_pooled"], rows.loc[("jpeg", "q50"), "bpp_pooled"]
    mid = (q10 * q50) ** 0.5  # the geometric middle: just below it, q10 is nearer
    assert nearest_quality(points, "jpeg", mid * 0.99)[0] == "q10"
    assert nearest_quality(points, "jpeg", mid * 1.01)[0] == "q50"
    assert nearest_quality(points, "jpeg", 100.0) == ("q50", pytest.approx(q50))


def test_crop_box_and_outline():
    anns = [{"bbox": [300, 200, 120, 60], "iscrowd": 0},
            {"bbox": [0, 0, 600, 400], "iscrowd": 0},
            {"bbox": [10, 10, 130, 120], "iscrowd": 1}]
    x, y, s = crop_box(anns, 640, 480)
    assert s == 150 and x <= 300 and x + s >= 420 and y <= 200 and y + s >= 260
    x, y, s = crop_box([{"bbox": [630, 470, 10, 10], "iscrowd": 0}], 640, 480)
    assert (x + s, y + s, s) == (640, 480, CROP_MIN)  # kept inside the image
    assert crop_box([], 100, 80) == (10, 0, 80)  # no object: the centre, at most the image
    mask = __import__("numpy").zeros((20, 20), bool)
    mask[5:15, 5:15] = True
    edge = outline(mask)
    assert edge[5, 5:15].all() and edge[6, 6:14].all() and not edge[7:13, 7:13].any()
    assert not (edge & ~mask).any()


@pytest.mark.slow
def test_standard_run_report(tmp_path, coco_root):
    """The report of a finished standard run (``$BENCH_REPORT_RUN``): under 10 MB, clean in
    the browser; writes the README's screenshots where ``$BENCH_REPORT_SCREENSHOT`` says."""
    run = os.environ.get("BENCH_REPORT_RUN")
    if not run:
        pytest.skip("set BENCH_REPORT_RUN=runs/leaderboard (and BENCH_REPORT_SCREENSHOT="
                    "docs/report-html.png) to check the standard run's report")
    exe = browser_or_skip()
    out = Path(os.environ.get("BENCH_REPORT_OUT") or tmp_path / "report")
    t0 = time.perf_counter()
    assert main(["report", "--run-dir", run, "--html", str(out), "--data-root",
                 str(coco_root)]) == 0
    built = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"report of {run}: {size / 1e6:.2f} MB, built in {built:.1f} s")
    assert size < 10e6
    with Browser(exe) as browser:
        facts = check_page(browser, out / "index.html")
        assert len(facts["charts"]) >= 4 and facts["tiles"] and facts["bdRows"]
        shot = os.environ.get("BENCH_REPORT_SCREENSHOT")
        if shot:
            browser.evaluate("window.scrollTo(0, 0)")
            curves = browser.rect("document.getElementById('curves')")
            browser.screenshot(shot, height=curves["y"] + curves["height"])
            first = browser.rect("document.querySelector('#gallery .gset:not([hidden]) "
                                 ".gimg')")
            top = browser.rect("document.getElementById('gallery')")["y"]
            gallery = Path(shot).with_name(Path(shot).stem + "-gallery.jpg")
            browser.screenshot(gallery, top=top, height=first["y"] + first["height"] - top)
            print(f"wrote {shot} and {gallery}")
