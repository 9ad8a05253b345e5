"""`bench report --bootstrap N`: intervals with a known answer on a hand-made store, the
all-images guard, and the options it refuses. The AP path runs on a real run in
tests/test_report_cli.py."""

from __future__ import annotations

import io
import math
import re

import pandas as pd
import pytest

from bench.cli import main
from bench.report.bd import bd_table
from bench.report.bootstrap import BootstrapError, Interval, bootstrap_bd, draws
from bench.report.points import build_points
from bench.store import ResultsStore
from tests.test_report_cli import JPEG, SIZES, WEBP, put


def report(*args: str) -> int:
    return main(["report", *args])


@pytest.fixture
def split_run(tmp_path):
    """webp needs half of jpeg's bytes on image 1 and exactly jpeg's on image 2, at the same
    PSNR everywhere: a resample of only image 1 gives -50 %, of only image 2 0 %, and a mixed
    one the pooled ratio in between."""
    rd = tmp_path / "split"
    with ResultsStore(rd) as store:
        put(store, "jpeg", JPEG)
        half = {q: (JPEG[jq][0] // 2, JPEG[jq][1]) for q, jq in zip(WEBP, JPEG, strict=True)}
        same = {q: JPEG[jq] for q, jq in zip(WEBP, JPEG, strict=True)}
        put(store, "webp", half, ids=(1,))
        put(store, "webp", same, ids=(2,))
    return rd


def test_intervals_have_the_known_answer(split_run, capsys):
    replicates = 200
    assert report("--run-dir", str(split_run), "--anchor", "jpeg", "--metric", "psnr",
                  "--bootstrap", str(replicates), "--format", "csv") == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out)).set_index("codec")
    webp = table.loc["webp"]
    # bytes per image at every grid point: jpeg b1 (image 1), b2 (image 2); webp b1/2, b2
    b1, b2 = (int(1000 * w * h / 5000) * 2 for w, h in (SIZES[1], SIZES[2]))
    mixed = 100 * ((b1 / 2 + b2) / (b1 + b2) - 1)
    assert webp["bd_rate"] == pytest.approx(mixed, abs=1e-9)  # all images: one of each
    assert webp["bd_rate_low"] == pytest.approx(-50.0, abs=1e-9)
    assert webp["bd_rate_high"] == pytest.approx(0.0, abs=1e-9)
    assert webp["bd_rate_median"] == pytest.approx(mixed, abs=1e-9)
    # the same PSNR at every point: BD-PSNR follows the rate gap, 0 on image 2 alone
    assert webp["bd_metric_high"] > 0 and webp["bd_metric_low"] == pytest.approx(0, abs=1e-9)
    only_image_2 = sum(d == [2, 2] for d in draws([1, 2], replicates, 0))
    assert webp["bd_rate_below_zero"] == pytest.approx(1 - only_image_2 / replicates)
    assert webp["bootstrap"] == replicates and webp["bd_rate_undefined"] == 0
    assert "bd_rate_ci" not in table.columns  # the interval texts are for people only
    anchor = table.loc["jpeg"]
    assert anchor["bootstrap"] == 0 and math.isnan(anchor["bd_rate_low"])


def test_text_table_shows_intervals_after_their_values(split_run, capsys):
    assert report("--run-dir", str(split_run), "--anchor", "jpeg", "--metric", "psnr",
                  "--bootstrap", "50", "--bootstrap-seed", "3") == 0
    out = capsys.readouterr().out
    assert "95 % intervals from 50 resamples of the images (seed 3)" in out
    head = next(ln for ln in out.splitlines() if ln.startswith("codec "))
    assert head.split("  ")[:4] == ["codec", "points", "BD-rate (%)", "95 % interval"]
    assert head.count("95 % interval") == 2
    webp = next(ln for ln in out.splitlines() if ln.startswith("webp "))
    assert "[-50.00, +0.00]" in webp


def test_seed_makes_a_report_reproducible(split_run, capsys):
    tables = []
    for seed in ("7", "7", "8"):
        assert report("--run-dir", str(split_run), "--anchor", "jpeg", "--bootstrap", "5",
                      "--bootstrap-seed", seed, "--format", "csv") == 0
        tables.append(pd.read_csv(io.StringIO(capsys.readouterr().out)))
    pd.testing.assert_frame_equal(tables[0], tables[1])
    assert draws([1, 2], 5, 7) != draws([1, 2], 5, 8)


def test_all_images_guard_names_a_disagreement(split_run):
    with ResultsStore(split_run) as store:
        points = build_points(store)
        table = bd_table(points, "psnr", "jpeg").set_index("codec")
        right = {"webp": (table.loc["webp", "bd_rate"], table.loc["webp", "bd_metric"])}
        got = bootstrap_bd(points, store, None, "psnr", "jpeg", replicates=2, expected=right)
        assert set(got) == {"webp"}
        with pytest.raises(BootstrapError, match="webp psnr: per-image values give BD"):
            bootstrap_bd(points, store, None, "psnr", "jpeg", replicates=2,
                         expected={"webp": (-10.0, 0.5)})


def test_interval_summary():
    got = Interval.of([float(v) for v in range(-50, 51)] + [math.nan])
    assert got.median == 0 and got.undefined == 1
    assert got.low == pytest.approx(-47.5) and got.high == pytest.approx(47.5)
    assert got.below_zero == pytest.approx(50 / 101)
    none = Interval.of([math.nan, math.nan])
    assert math.isnan(none.low) and none.undefined == 2


@pytest.mark.parametrize(("args", "message"), [
    (["--bootstrap", "5", "--points"], "--points prints the points table"),
    (["--bootstrap", "-1"], "--bootstrap -1: give a number of resamples"),
    (["--coco-eval", "faster-coco-eval"], "--coco-eval only applies with --bootstrap N"),
    (["--bootstrap-seed", "2"], "--bootstrap-seed only applies with --bootstrap N"),
    (["--bootstrap", "5", "--images", "all"], "--bootstrap needs --images common"),
    (["--bootstrap", "5", "--with-points", "x.csv"], "a points file holds no per-image"),
])
def test_refused_combinations_say_why(split_run, capsys, args, message):
    assert report("--run-dir", str(split_run), "--anchor", "jpeg", *args) == 2
    assert message in capsys.readouterr().err


def test_html_report_shows_the_intervals_of_the_bootstrapped_axes(split_run, tmp_path,
                                                                   capsys):
    out = tmp_path / "html"
    assert report("--run-dir", str(split_run), "--anchor", "jpeg", "--metric", "psnr",
                  "--bootstrap", "40", "--html", str(out), "--html-images", "0") == 0
    page = (out / "index.html").read_text()
    assert "95 % intervals from 40 resamples of the images (seed 0)" in page
    # the summary row and the PSNR detail table: the interval beside webp's BD-rate
    assert page.count("[-50.00, +0.00]") == 2 and page.count(">95 % interval<") == 3
    bd = pd.read_csv(out / "data" / "bd.csv").set_index("codec")
    assert bd.loc["webp", "bd_rate_low"] == pytest.approx(-50.0, abs=1e-9)
    assert "bd_rate_ci" not in bd.columns
    assert "[-50.00, +0.00]" in capsys.readouterr().out  # and in the printed table
    # sorting by the interval column orders by the bootstrap median, not by the text
    # (a text sort puts [-50.00, ...] after [-10.00, ...])
    keys = re.findall(r'<td data-v="([^"]*)">\[-50\.00, \+0\.00\]</td>', page)
    assert len(keys) == 2
    assert all(float(k) == pytest.approx(bd.loc["webp", "bd_rate_median"]) for k in keys)
    assert '<td data-v=""></td>' in page  # the anchor's empty interval sorts last


@pytest.mark.parametrize("options", [["--rate", "mean"], ["--method", "akima"],
                                     ["--metric", "ms-ssim", "--non-monotonic", "nan"]])
def test_report_options_carry_into_the_resamples(split_run, capsys, options):
    """The resamples use the table's rate axis, method and policy: on all images they give
    the table's values (checked before resampling, else exit 2), and image 1 alone -50 %."""
    assert report("--run-dir", str(split_run), "--anchor", "jpeg", "--bootstrap", "60",
                  "--format", "csv", *options) == 0
    webp = pd.read_csv(io.StringIO(capsys.readouterr().out)).set_index("codec").loc["webp"]
    assert webp["bd_rate_low"] == pytest.approx(-50.0, abs=1e-9)
    assert webp["bd_rate_high"] == pytest.approx(0.0, abs=1e-9)


def test_leaderboard_carries_the_intervals_of_all_its_axes(split_run, tmp_path, capsys):
    """--leaderboard with --bootstrap: every leaderboard axis gets its intervals, those the
    printed table covered (psnr) and the others (roi-psnr, ms-ssim), in the CSV and beside
    each BD-rate in the Markdown; the command that made it names the bootstrap."""
    out = tmp_path / "lb"
    assert report("--run-dir", str(split_run), "--anchor", "jpeg", "--metric", "psnr",
                  "--bootstrap", "40", "--leaderboard", str(out)) == 0
    board = pd.read_csv(out / "leaderboard.csv").set_index("codec")
    for axis in ("psnr", "roi_psnr", "ms_ssim"):
        # the same PSNR, ROI-PSNR and MS-SSIM on both images: the known [-50, 0] on each axis
        assert board.loc["webp", f"bd_rate_{axis}_low"] == pytest.approx(-50.0, abs=1e-6)
        assert board.loc["webp", f"bd_rate_{axis}_high"] == pytest.approx(0.0, abs=1e-6)
        assert math.isnan(board.loc["jpeg", f"bd_rate_{axis}_low"])  # the anchor
    assert board.loc["webp", "bootstrap"] == 40
    md = (out / "leaderboard.md").read_text()
    assert md.count("[-50.00, +0.00]") == 3
    assert "[low, high]: the BD-rate's 95 % intervals from 40 resamples" in md
    assert "--bootstrap 40 --leaderboard" in md  # "This copy was made with"
    assert report("--run-dir", str(split_run), "--anchor", "jpeg",
                  "--leaderboard", str(tmp_path / "plain")) == 0
    plain = pd.read_csv(tmp_path / "plain" / "leaderboard.csv")
    assert not any(c.endswith(("_low", "_high")) or c == "bootstrap" for c in plain.columns)
    assert "[low, high]" not in (tmp_path / "plain" / "leaderboard.md").read_text()
