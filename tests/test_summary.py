"""Aggregates that one image must not break: capped PSNR means and bpp outlier notes."""

from __future__ import annotations

import math

import pytest

from bench.cli import main
from bench.store import ImageResult, ResultsStore
from bench.summary import BPP_OUTLIER_FACTOR, format_table, summarize, summary_notes


def _row(image_id: int, bpp: float, psnr: float, *, w: int = 64, h: int = 48,
         roi: float = math.nan, bg: float = math.nan) -> ImageResult:
    return ImageResult(codec="c", codec_version="1", quality="q", image_id=image_id,
                       width=w, height=h, bytes=round(bpp * w * h / 8), bpp=bpp, psnr=psnr,
                       roi_psnr=roi, bg_psnr=bg, ms_ssim=0.9, encode_s=0.1, decode_s=0.1)


def _summary(rows):
    (s,) = summarize(rows, ["c"], {"c": ["q"]})
    return s


def test_identical_reconstruction_counts_as_the_cap():
    rows = [_row(1, 2.0, 30.0, roi=28.0, bg=math.inf), _row(2, 2.0, math.inf, roi=math.inf,
                                                           bg=math.nan),
            _row(3, 2.0, 140.0)]  # a finite value above the cap is capped too
    s = _summary(rows)
    assert s.psnr == pytest.approx((30.0 + 100.0 + 100.0) / 3)
    assert s.roi_psnr == pytest.approx((28.0 + 100.0) / 2) and s.bg_psnr == 100.0
    assert s.psnr_capped == 3
    assert rows[1].psnr == math.inf  # the stored per-image value stays exact
    (note,) = summary_notes([s])
    assert note == ("c q: 3 image(s) with PSNR above 100 dB (+inf for identical pixels), "
                    "counted as 100 dB in the means")
    assert summary_notes([_summary([_row(1, 2.0, 30.0), _row(2, 2.0, 99.0)])]) == []


def test_bpp_outlier_is_named_with_the_mean_without_it():
    rows = [_row(1, 1.0, 30.0), _row(2, 1.2, 31.0), _row(3, 0.8, 29.0),
            _row(4, 4000.0, 40.0, w=1, h=1)]
    s = _summary(rows)
    assert s.bpp_median == pytest.approx(1.1)
    assert s.bpp_outliers == [(4, 4000.0)]
    assert s.bpp_mean == pytest.approx(4003.0 / 4) and s.bpp_mean_inliers == pytest.approx(1.0)
    (note,) = summary_notes([s])
    assert note.startswith("c q: 1 bpp outlier(s) above 10× the median 1.1000 bpp: image 4 "
                           "(4000 bpp, 3636× the median)")
    assert note.endswith("bpp (mean) 1000.7500 includes them, 1.0000 without")
    # just under the factor is not an outlier
    rows[3] = _row(4, BPP_OUTLIER_FACTOR * 1.1 * 0.99, 40.0)
    assert _summary(rows).bpp_outliers == [] and summary_notes(summarize(
        rows, ["c"], {"c": ["q"]})) == []


def test_run_with_a_one_pixel_image_keeps_means_finite(tiny_coco, tmp_path, capsys):
    """tiny_coco's image 4 is 1×1: lossless (original) and tiny (JPEG headers) at once."""
    rd = tmp_path / "run"
    assert main(["run", "--no-progress", "--codec", "original", "--codec", "jpeg",
                 "--quality", "jpeg:q50", "--quality", "original:source", "--metrics", "psnr",
                 "--data-root", str(tiny_coco),
                 "--run-dir", str(rd)]) == 0
    out = capsys.readouterr().out
    with ResultsStore(rd) as store:
        rows = store.results()
    summaries = summarize(rows, ["original", "jpeg"], {"original": ["source"], "jpeg": ["q50"]})
    original, jpeg = summaries
    assert all(r.psnr == math.inf for r in rows if r.codec == "original")
    assert "identical pixels" in next(r.notes for r in rows if r.codec == "original")
    assert original.psnr == 100.0 and original.psnr_capped == 4
    assert math.isfinite(jpeg.psnr)
    assert [i for i, _ in jpeg.bpp_outliers] == [4]
    table = out.splitlines()
    row = next(ln for ln in table if ln.split()[:2] == ["original", "source"])
    assert row.split()[6] == "100.00"  # PSNR column
    notes = table[table.index("notes:") + 1:]
    assert any(n.strip().startswith("jpeg q50: 1 bpp outlier(s)") and "image 4 " in n
               for n in notes)
    assert any(n.strip().startswith("original source: 4 image(s) with PSNR above 100 dB")
               for n in notes)
    assert format_table(summaries).endswith(table[-1])


def test_ms_ssim_on_part_of_the_images_is_left_out_not_averaged():
    """A run resumed with --metrics psnr codes some images without MS-SSIM: the mean over
    the others would be set beside other codecs' means over every image, so it is NaN with
    a note. An image too small for MS-SSIM is no such gap: the mean is over the others."""
    from bench.metrics import MS_SSIM_SKIPPED

    rows = [_row(1, 1.0, 30.0), _row(2, 1.0, 30.0), _row(3, 1.0, 30.0)]
    rows[0].ms_ssim, rows[1].ms_ssim = 0.8, 1.0
    rows[2].ms_ssim, rows[2].notes = math.nan, MS_SSIM_SKIPPED
    s = _summary(rows)
    assert math.isnan(s.ms_ssim) and s.ms_ssim_skipped == 1
    (note,) = summary_notes([s])
    assert note.startswith("c q: MS-SSIM left out: 1 of 3 image(s) were coded with "
                           "--metrics psnr")
    rows[2].notes = "image too small for MS-SSIM"
    s = _summary(rows)
    assert s.ms_ssim == pytest.approx(0.9) and s.ms_ssim_skipped == 0
    assert summary_notes([s]) == []
    for r in rows:  # none computed: simply not there, nothing to note
        r.ms_ssim, r.notes = math.nan, MS_SSIM_SKIPPED
    s = _summary(rows)
    assert math.isnan(s.ms_ssim) and s.ms_ssim_skipped == 0 and summary_notes([s]) == []


def test_resumed_run_with_other_metrics_names_the_gap(coco_root, tmp_path, capsys):
    rd = tmp_path / "run"
    base = ["run", "--no-progress", "--codec", "jpeg", "--quality", "q50",
            "--data-root", str(coco_root), "--run-dir", str(rd)]
    assert main([*base, "--limit", "2", "--metrics", "psnr"]) == 0
    assert main([*base, "--limit", "3"]) == 0
    out = capsys.readouterr().out
    row = next(ln for ln in out.splitlines() if ln.split()[:2] == ["jpeg", "q50"])
    assert row.split()[9] == "—"  # the MS-SSIM column
    assert "jpeg q50: MS-SSIM left out: 2 of 3 image(s)" in out
    assert main(["report", "--run-dir", str(rd), "--points", "--format", "csv"]) == 0
    err = capsys.readouterr().err
    assert "jpeg q50: MS-SSIM left out: 2 of 3 image(s) were coded with --metrics psnr" in err
