"""Table formats: best values in bold, missing values, escaping, and LaTeX that compiles."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from bench.report.tables import Column, latex_escape, render, to_csv

FRAME = pd.DataFrame({
    "codec": ["jpeg", "web_p", "original"],
    "rate": [0.0, -12.345, math.nan],
    "gain": [0.0, 1.5, math.inf],
    "n": [9, 8, 1],
    "note": ["anchor", "", "ceiling: 100% & more → fine"],
    "flag": ["", "†", ""],
})
COLUMNS = [Column("codec", "codec"), Column("rate", "BD-rate (%)", "{:+.2f}", "min", "flag"),
           Column("gain", "gain", "{:.1f}", "max"), Column("n", "points", "{:d}"),
           Column("note", "note", latex_spec="footnote")]


def test_text_marks_best_and_missing():
    text = render(FRAME, COLUMNS, "text", title="T")
    lines = text.splitlines()
    assert lines[0] == "T" and "BD-rate (%)" in lines[1]
    assert "-12.35 †*" in text  # the lowest rate is the best; inf never counts as best
    assert "1.5*" in text and "inf" in text and "—" in text


def test_markdown_bold_and_alignment():
    md = render(FRAME, COLUMNS, "markdown")
    assert md.splitlines()[1] == "|:---|---:|---:|---:|:---|"
    assert "| web_p | **-12.35 †** | **1.5** | 8 |  |" in md
    assert "| original | — | inf | 1 |" in md


def test_skipped_rows_never_count_as_best():
    frame = pd.DataFrame({"codec": ["a", "ceiling"], "v": [30.0, 99.0]})
    md = render(frame, [Column("codec", "c"), Column("v", "v", "{:.1f}", "max")], "markdown",
                skip=[False, True])
    assert "**" not in md  # one candidate only: nothing to single out


def test_unranked_rows_are_flagged_never_best():
    frame = pd.DataFrame({"codec": ["a", "b", "c"], "v": [-10.0, -60.0, 0.0],
                          "low": ["", "‡", ""]})
    cols = [Column("codec", "c"), Column("v", "v", "{:.1f}", "min", suffix="low",
                                         unranked="low")]
    md = render(frame, cols, "markdown")
    assert "| a | **-10.0** |" in md and "| b | -60.0 ‡ |" in md
    assert "-10.0*" in render(frame, cols, "text") and "-60.0 ‡*" not in render(
        frame, cols, "text")
    assert r"\textbf{$-$10.0}" in render(frame, cols, "latex")


def test_latex_escapes_and_footnotes():
    tex = render(FRAME, COLUMNS, "latex", title="BD_rate 5%", label="tab:x")
    assert r"\caption{BD\_rate 5\%}" in tex and r"\label{tab:x}" in tex
    assert r"\begin{tabular}{lrrrl}" in tex and r"\toprule" in tex and r"\midrule" in tex
    assert r"web\_p & \textbf{$-$12.35 $^\dagger$} & \textbf{1.5} & 8 &  \\" in tex
    assert r"original & -- & inf & 1 & b \\" in tex
    assert r"(a) anchor; (b) ceiling: 100\% \& more $\to$ fine." in tex
    assert latex_escape("a_b~c^d{e}#$") == (r"a\_b\textasciitilde{}c\textasciicircum{}d"
                                            r"\{e\}\#\$")
    assert latex_escape("ünknown") == "?nknown"


def test_csv_keeps_full_precision():
    out = to_csv(FRAME, ["codec", "rate"])
    assert out.splitlines() == ["codec,rate", "jpeg,0.0", "web_p,-12.345", "original,"]
    with pytest.raises(ValueError, match="unknown table format"):
        render(FRAME, COLUMNS, "html")


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_latex_compiles(tmp_path):
    wide = pd.DataFrame({f"c{i}": [1.0 * i, -2.0 * i] for i in range(12)})
    cols = [Column(f"c{i}", f"col_{i} (%)", "{:.2f}", "max") for i in range(12)]
    doc = "\n".join([
        r"\documentclass{article}", r"\usepackage{booktabs,graphicx}", r"\begin{document}",
        render(FRAME, COLUMNS, "latex", title="BD 5%", label="tab:bd"),
        render(wide, cols, "latex", title="wide"), r"\end{document}", ""])
    (tmp_path / "t.tex").write_text(doc)
    run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:]
    assert (tmp_path / "t.pdf").read_bytes().startswith(b"%PDF")
    assert "Overfull" not in run.stdout


def test_leaderboard_markdown_never_bolds_a_low_overlap_value():
    """The best BD-rate of a column is bold only where the curves overlap enough (‡ values
    are not comparable), as in the text, HTML and LaTeX tables."""
    from types import SimpleNamespace

    from bench.report.leaderboard import markdown

    frame = pd.DataFrame({
        "rank": pd.array([1, 2, 3], dtype="Int64"), "codec": ["a", "b", "vvc"],
        "bd_rate_psnr": [-40.0, -10.0, 0.0], "overlap_psnr": [30.0, 90.0, 100.0],
        "flag_psnr": ["‡", "", ""], "bpp_min": [0.1] * 3, "bpp_max": [1.0] * 3,
        "points": [8] * 3})
    points = SimpleNamespace(image_ids=[1, 2], models=lambda task: {},
                             versions={"a": "a-1", "b": "b-1", "vvc": "vvc-1"})
    md = markdown(frame, ["psnr"], points, anchor="vvc", method="pchip", rate="pooled")
    rows = {ln.split("|")[2].strip(): ln for ln in md.splitlines() if ln.startswith("| ")}
    assert "-40.00 ‡" in rows["a"] and "**-40.00" not in rows["a"]
    assert "**-10.00**" in rows["b"]


def _markdown_table(text: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| rank |"))
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return lines[start:end]


def test_readme_shows_the_committed_leaderboard():
    """The README's leaderboard table is ``results/leaderboard.md``'s, row for row: release 7
    updated the committed leaderboard while the README went on showing release 6's rows."""
    root = Path(__file__).resolve().parent.parent
    readme = _markdown_table((root / "README.md").read_text(encoding="utf-8"))
    committed = _markdown_table((root / "results" / "leaderboard.md").read_text(encoding="utf-8"))
    assert len(committed) > 3
    assert readme == committed
