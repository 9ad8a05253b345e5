"""Per-(codec, quality) aggregates of stored image results, and their text table.

Two bpp figures are reported and labelled: ``bpp_mean`` (mean of per-image bpp, each image
weighted equally) and ``bpp_pooled`` (Σ bits / Σ pixels over the images, the rate of the
whole set). PSNR-type metrics are means of per-image values over the images where they are
defined; error rows are counted, not averaged. Rows are grouped per codec *label*
(:mod:`bench.labels`), so two option sets of one codec are two series; the table's codec
column shows the label.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.store import ImageResult


@dataclass
class QualitySummary:
    """Aggregates of one (codec label, quality) over the images of a run."""

    codec: str
    quality: str
    images: int
    errors: int
    bpp_mean: float
    bpp_pooled: float
    psnr: float
    roi_psnr: float
    bg_psnr: float
    ms_ssim: float
    encode_s: float
    decode_s: float
    #: task columns (e.g. det_ap) added after scoring
    extra: dict = field(default_factory=dict)
    #: the codec's label (:mod:`bench.labels`); empty means the codec name
    label: str = ""

    def __post_init__(self) -> None:
        if not self.label:
            self.label = self.codec

    def value(self, column: str) -> float | int | str:
        """A named column's value, task columns included (NaN when absent)."""
        if column in self.extra:
            return self.extra[column]
        return getattr(self, column, math.nan)

    #: columns that do not depend on timing, i.e. are reproducible run to run
    DETERMINISTIC = ("label", "codec", "quality", "images", "errors", "bpp_mean", "bpp_pooled",
                     "psnr", "roi_psnr", "bg_psnr", "ms_ssim")


def _mean(values: Sequence[float]) -> float:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return math.nan
    if any(math.isinf(v) for v in vals):
        return math.inf
    return math.fsum(vals) / len(vals)


def summarize(rows: Sequence[ImageResult], codec_order: Sequence[str],
              quality_order: dict[str, Sequence[str]]) -> list[QualitySummary]:
    """Aggregate rows per (label, quality), in the order of the labels and their grids.

    ``codec_order`` lists labels (a codec's plain name is its default label) and
    ``quality_order`` maps each to its qualities.
    """
    groups: dict[tuple[str, str], list[ImageResult]] = {}
    for row in rows:
        groups.setdefault((row.label, row.quality), []).append(row)
    out = []
    for label in codec_order:
        for quality in quality_order[label]:
            group = groups.get((label, quality))
            if not group:
                continue
            ok = [r for r in group if r.ok]
            pixels = sum(r.width * r.height for r in ok)
            out.append(QualitySummary(
                codec=group[0].codec,
                label=label,
                quality=quality,
                images=len(group),
                errors=len(group) - len(ok),
                bpp_mean=_mean([r.bpp for r in ok]),
                bpp_pooled=8.0 * sum(r.bytes for r in ok) / pixels if pixels else math.nan,
                psnr=_mean([r.psnr for r in ok]),
                roi_psnr=_mean([r.roi_psnr for r in ok]),
                bg_psnr=_mean([r.bg_psnr for r in ok]),
                ms_ssim=_mean([r.ms_ssim for r in ok]),
                encode_s=_mean([r.encode_s for r in ok]),
                decode_s=_mean([r.decode_s for r in ok]),
            ))
    return out


_HEADERS = [
    ("label", "codec", "{}"), ("quality", "quality", "{}"), ("images", "images", "{}"),
    ("errors", "errors", "{}"), ("bpp_mean", "bpp (mean)", "{:.4f}"),
    ("bpp_pooled", "bpp (pooled)", "{:.4f}"), ("psnr", "PSNR dB", "{:.2f}"),
    ("roi_psnr", "ROI-PSNR dB", "{:.2f}"), ("bg_psnr", "BG-PSNR dB", "{:.2f}"),
    ("ms_ssim", "MS-SSIM", "{:.4f}"), ("encode_s", "enc s", "{:.3f}"),
    ("decode_s", "dec s", "{:.3f}"),
]
_TASK_FORMAT = "{:.1f}"


def _cell(value, fmt: str) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "—"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return fmt.format(value)


def format_table(summaries: Sequence[QualitySummary],
                 extra: Sequence[tuple[str, str]] = ()) -> str:
    """A plain-text table; ``extra`` adds (column id, header) task columns after bpp."""
    cols = list(_HEADERS)
    cols[6:6] = [(a, h, _TASK_FORMAT) for a, h in extra]
    body = [[_cell(s.value(a), f) for a, _, f in cols] for s in summaries]
    heads = [h for _, h, _ in cols]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h)
              for i, h in enumerate(heads)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(heads, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(lines)
