"""Tables as plain text, CSV, Markdown or LaTeX (booktabs), the best value per column in bold.

A table is a DataFrame plus a list of :class:`Column` specs saying which columns to show, how
to format their numbers and whether smaller or larger is better. CSV keeps every value at full
precision under the column names (for machines); the other formats are for people and papers.
LaTeX output needs ``\\usepackage{booktabs}`` (and ``graphicx`` for tables wider than
:data:`LATEX_MAX_COLUMNS` columns, which are scaled to the line width) in the preamble.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

FORMATS = ("text", "csv", "markdown", "latex")
MISSING = "—"
#: LaTeX tables with more columns than this are scaled to the line width.
LATEX_MAX_COLUMNS = 9


@dataclass(frozen=True)
class Column:
    """One shown column: frame column, header, number format, and which way is better."""

    key: str
    header: str
    fmt: str = "{}"
    #: "min" or "max" to set the best value in bold; None for no emphasis
    best: str | None = None
    #: a frame column of short text appended to each cell (flags such as a dagger)
    suffix: str | None = None
    #: LaTeX column spec overriding the default ``l``/``r`` (e.g. ``p{5cm}``), or
    #: ``"footnote"``: letters in the cells, the texts in a legend under the table
    latex_spec: str | None = None
    #: a frame column whose non-empty cells exclude the row from being this column's best
    #: (a BD value resting on a small overlap is flagged, never bold)
    unranked: str | None = None
    #: a frame column of numbers that orders this column when an HTML table is sorted by it
    #: (an interval's text sorts by its bootstrap median, not as text)
    sort_by: str | None = None


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def best_rows(frame: pd.DataFrame, col: Column,
              skip: Sequence[bool] | None = None) -> set[int]:
    """Positions of the rows holding the column's best finite value (ties all count).

    Rows flagged in ``skip`` (e.g. the uncompressed ceiling) never count as best, nor do rows
    with a non-empty cell in the column's ``unranked`` column.
    """
    if col.best is None:
        return set()
    out = [bool(v) and v is not pd.NA and not (isinstance(v, float) and math.isnan(v))
           for v in frame[col.unranked]] if col.unranked else [False] * len(frame)
    vals = [(i, float(v)) for i, v in enumerate(frame[col.key])
            if _is_number(v) and math.isfinite(float(v)) and not (skip and skip[i])
            and not out[i]]
    if len(vals) < 2:
        return set()
    target = (min if col.best == "min" else max)(v for _, v in vals)
    return {i for i, v in vals if v == target}


def cell(value, fmt: str) -> str:
    """One value as text: NaN, None and pandas' NA as a dash, infinities as ``inf``."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if _is_number(value) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if _is_number(value):
        return fmt.format(value)
    return str(value)


def _grid(frame: pd.DataFrame, columns: Sequence[Column],
          skip: Sequence[bool] | None = None) -> tuple[list[list[str]], list[set]]:
    body = [[cell(v, c.fmt) for v, c in zip(row, columns, strict=True)]
            for row in frame[[c.key for c in columns]].itertuples(index=False)]
    for j, c in enumerate(columns):
        if c.suffix:
            for i, extra in enumerate(frame[c.suffix]):
                if extra:
                    body[i][j] += f" {extra}"
    return body, [best_rows(frame, c, skip) for c in columns]


def _numeric(frame: pd.DataFrame, col: Column) -> bool:
    return any(_is_number(v) for v in frame[col.key])


def to_csv(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> str:
    """CSV at full precision with the frame's own column names."""
    return frame.to_csv(index=False, columns=list(columns) if columns else None,
                        lineterminator="\n")


def to_text(frame: pd.DataFrame, columns: Sequence[Column], title: str = "",
            skip: Sequence[bool] | None = None) -> str:
    """An aligned plain-text table; the best values are marked with ``*``."""
    body, best = _grid(frame, columns, skip)
    body = [[c + ("*" if i in best[j] else "") for j, c in enumerate(row)]
            for i, row in enumerate(body)]
    heads = [c.header for c in columns]
    widths = [max([len(h)] + [len(r[j]) for r in body]) for j, h in enumerate(heads)]
    num = [_numeric(frame, c) for c in columns]

    def line(cells):
        return "  ".join(c.rjust(w) if n else c.ljust(w)
                         for c, w, n in zip(cells, widths, num, strict=True)).rstrip()

    out = [title] if title else []
    out += [line(heads), "  ".join("-" * w for w in widths)] + [line(r) for r in body]
    return "\n".join(out)


def to_markdown(frame: pd.DataFrame, columns: Sequence[Column], title: str = "",
                skip: Sequence[bool] | None = None) -> str:
    """A GitHub-flavoured Markdown table with the best values in bold."""
    body, best = _grid(frame, columns, skip)

    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    out = [f"**{esc(title)}**", ""] if title else []
    out.append("| " + " | ".join(esc(c.header) for c in columns) + " |")
    out.append("|" + "|".join("---:" if _numeric(frame, c) else ":---" for c in columns) + "|")
    for i, row in enumerate(body):
        cells = [f"**{esc(v)}**" if i in best[j] else esc(v) for j, v in enumerate(row)]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


_LATEX_ESCAPES = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "—": "--", "–": "--", "−": "-", "→": r"$\to$", "×": r"$\times$", "≥": r"$\geq$",
    "≤": r"$\leq$", "Σ": r"$\Sigma$", "ø": r"{\o}", "Ø": r"{\O}", "±": r"$\pm$",
    "†": r"$^\dagger$", "‡": r"$^\ddagger$",
}


def latex_escape(text: str) -> str:
    """Text safe for pdflatex: specials escaped, known non-ASCII mapped, others replaced."""
    out = []
    for ch in text:
        if ch in _LATEX_ESCAPES:
            out.append(_LATEX_ESCAPES[ch])
        elif ord(ch) < 128:
            out.append(ch)
        else:
            out.append("?")
    return "".join(out)


def _latex_cell(text: str, numeric: bool) -> str:
    if text == MISSING:
        return "--"
    if numeric and text.startswith("-") and text[1:2].isdigit():
        return "$-$" + latex_escape(text[1:])
    return latex_escape(text)


def _footnote_marks(texts: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Letters standing for each non-empty text (equal texts share one) and the legend."""
    letters: dict[str, str] = {}
    marks = []
    for t in texts:
        if not t or t == MISSING:
            marks.append("")
            continue
        if t not in letters:
            n = len(letters)
            letters[t] = chr(ord("a") + n % 26) + ("" if n < 26 else str(n // 26))
        marks.append(letters[t])
    return marks, [(m, t) for t, m in letters.items()]


def to_latex(frame: pd.DataFrame, columns: Sequence[Column], title: str = "",
             label: str = "", skip: Sequence[bool] | None = None) -> str:
    """A booktabs ``table`` with caption and label; the best values in ``\\textbf``.

    A column whose ``latex_spec`` is ``"footnote"`` (long notes) becomes letters in the
    table and a legend under it. A table wider than :data:`LATEX_MAX_COLUMNS` columns is
    scaled to the line width (``\\resizebox``, from graphicx).
    """
    body, best = _grid(frame, columns, skip)
    num = [_numeric(frame, c) for c in columns]
    legend: list[tuple[str, str]] = []
    for j, c in enumerate(columns):
        if c.latex_spec == "footnote":
            marks, legend = _footnote_marks([row[j] for row in body])
            for row, m in zip(body, marks, strict=True):
                row[j] = m
    spec = "".join("l" if c.latex_spec == "footnote" else
                   c.latex_spec or ("r" if n else "l") for c, n in zip(columns, num, strict=True))
    wide = len(columns) > LATEX_MAX_COLUMNS
    out = [r"\begin{table}[t]", r"\centering"]
    if title:
        out.append(r"\caption{" + latex_escape(title) + "}")
    if label:
        out.append(r"\label{" + label + "}")
    out += [(r"\resizebox{\linewidth}{!}{%" + "\n") * wide + r"\begin{tabular}{" + spec + "}",
            r"\toprule",
            " & ".join(latex_escape(c.header) for c in columns) + r" \\", r"\midrule"]
    for i, row in enumerate(body):
        cells = []
        for j, v in enumerate(row):
            text = _latex_cell(v, num[j])
            cells.append(r"\textbf{" + text + "}" if i in best[j] else text)
        out.append(" & ".join(cells) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}" + "}" * wide]
    if legend:
        out.append(r"\par\smallskip\begin{minipage}{\linewidth}\footnotesize " + "; ".join(
            f"({m}) {latex_escape(t)}" for m, t in legend) + r".\end{minipage}")
    out.append(r"\end{table}")
    return "\n".join(out)


def render(frame: pd.DataFrame, columns: Sequence[Column], fmt: str, title: str = "",
           label: str = "", skip: Sequence[bool] | None = None) -> str:
    """The table in one of :data:`FORMATS` (CSV ignores the title and the formats).

    ``skip`` flags rows that never count as best (e.g. the uncompressed ceiling).
    """
    if fmt == "csv":
        return to_csv(frame, [c.key for c in columns])
    if fmt == "markdown":
        return to_markdown(frame, columns, title, skip)
    if fmt == "latex":
        return to_latex(frame, columns, title, label, skip)
    if fmt == "text":
        return to_text(frame, columns, title, skip)
    raise ValueError(f"unknown table format {fmt!r}; choose from {', '.join(FORMATS)}")
