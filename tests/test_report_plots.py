"""RD figures: the paper style's size, fonts, title and legend, and dominated points marked."""

from __future__ import annotations

import re

import pytest

from bench.report.plots import DOMINATED_LABEL, PAPER_MIN_FONT_PT, plot_all, rd_figure
from bench.report.points import build_points
from bench.store import ResultsStore
from tests.test_report_cli import JPEG, put


@pytest.fixture
def points(tmp_path):
    """jpeg (monotonic) and webp whose q45 is dominated by its q25 (more rate, less PSNR)."""
    with ResultsStore(tmp_path / "run") as store:
        put(store, "jpeg", JPEG)
        put(store, "webp", {"q10": (500, 28.0), "q25": (800, 31.5), "q45": (1200, 31.0),
                            "q65": (1500, 35.0)})
        return build_points(store)


def _texts(fig):
    from matplotlib.text import Text

    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def test_paper_figure_is_single_column_with_readable_fonts(points):
    fig = rd_figure(points, "psnr", style="paper")
    assert fig.get_figwidth() == pytest.approx(3.5)
    sizes = [t.get_fontsize() for t in _texts(fig)]
    assert sizes and min(sizes) >= PAPER_MIN_FONT_PT
    ax = fig.axes[0]
    assert ax.get_title() == "" and not fig.texts  # no title: the caption says it
    assert ax.get_legend() is None and len(fig.legends) == 1  # legend outside the axes
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    legend = fig.legends[0].get_window_extent(renderer)
    axes = ax.get_window_extent(renderer)
    assert not legend.overlaps(axes) and legend.y1 <= axes.y0
    assert legend.x0 >= 0 and legend.x1 <= fig.bbox.width + 0.5  # not cut off
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["jpeg", "webp", DOMINATED_LABEL]


def test_dominated_points_are_hollow(points):
    fig = rd_figure(points, "psnr")
    hollow = [ln for ln in fig.axes[0].get_lines()
              if ln.get_markerfacecolor() in ("white", (1.0, 1.0, 1.0, 1.0))
              and len(ln.get_xdata()) > 0]
    assert len(hollow) == 1 and list(hollow[0].get_ydata()) == [31.0]
    assert fig.axes[0].get_title().startswith("PSNR vs rate")  # the screen style has one
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["jpeg", "webp", DOMINATED_LABEL]


def test_monotonic_curves_have_no_hollow_points(tmp_path):
    with ResultsStore(tmp_path / "run") as store:
        put(store, "jpeg", JPEG)
        points = build_points(store)
    fig = rd_figure(points, "psnr", style="paper")
    assert all(ln.get_markerfacecolor() != "white" for ln in fig.axes[0].get_lines())
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["jpeg"]


def test_paper_files_size_and_metric_filter(points, tmp_path):
    paths = plot_all(points, tmp_path, metrics=["psnr", "ms-ssim"], style="paper")
    assert sorted(p.name for p in paths) == ["rd_ms-ssim.pdf", "rd_ms-ssim.png",
                                             "rd_psnr.pdf", "rd_psnr.png"]
    pdf = (tmp_path / "rd_psnr.pdf").read_bytes()
    box = re.search(rb"/MediaBox \[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf)
    assert box and float(box.group(1)) == pytest.approx(252.0)  # 3.5 in
    assert b"/FontFile2" in pdf  # TrueType embedded, no Type 3
    with pytest.raises(ValueError, match="unknown figure style"):
        rd_figure(points, "psnr", style="poster")
