"""Per-(codec, quality) aggregates of stored image results, and their text table.

Two bpp figures are reported and labelled: ``bpp_mean`` (mean of per-image bpp, each image
weighted equally) and ``bpp_pooled`` (Σ bits / Σ pixels over the images, the rate of the
whole set). PSNR-type metrics are means of per-image values over the images where they are
defined; error rows are counted, not averaged. Rows are grouped per codec *label*
(:mod:`bench.labels`), so two option sets of one codec are two series; the table's codec
column shows the label.

Two kinds of single images that would otherwise decide an aggregate are counted and named
in notes under the table:

* PSNR-type values enter the means capped at :data:`bench.metrics.PSNR_CAP_DB` (100 dB, as
  libaom reports PSNR), so an identical reconstruction (+inf in the store) keeps the means
  finite;
* an image whose bpp exceeds :data:`BPP_OUTLIER_FACTOR` times the median bpp of its
  (label, quality) is a *bpp outlier* (e.g. a 1×1 image, whose headers alone are thousands
  of bits per pixel): ``bpp (mean)`` still includes it, and the note gives the mean
  without it; ``bpp (pooled)`` weighs it by its pixels and is barely moved.

MS-SSIM is left out of a (label, quality) (shown as "—", with a note) where some of its
images have it and others were coded with ``--metrics psnr`` (a run resumed with other
metrics): a mean over part of the images would be set beside other codecs' means over all
of them. Images too small for MS-SSIM are not such a gap: the mean is over the others.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.metrics import MS_SSIM_SKIPPED, PSNR_CAP_DB, capped_psnr
from bench.store import ImageResult

#: An image is a bpp outlier of its (label, quality) above this multiple of the median bpp.
#: On the 79 shared val2017 images the largest ratio of any codec's grid point is 6.4
#: (hevc qp37), so 10 names only images that are out of the ordinary.
BPP_OUTLIER_FACTOR = 10.0


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
    #: median of per-image bpp (NaN without images)
    bpp_median: float = math.nan
    #: (image id, bpp) of images above BPP_OUTLIER_FACTOR × bpp_median, highest first
    bpp_outliers: list = field(default_factory=list)
    #: mean bpp of the images that are not bpp outliers
    bpp_mean_inliers: float = math.nan
    #: images with a PSNR-type value above PSNR_CAP_DB (+inf: identical pixels), capped
    psnr_capped: int = 0
    #: images coded without MS-SSIM (``--metrics psnr``) beside others with it; then
    #: ``ms_ssim`` is NaN rather than the mean over the others
    ms_ssim_skipped: int = 0

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


def finite_mean(values: Sequence[float]) -> float:
    """Mean of the values that are not None or NaN (NaN when none is; inf when one is)."""
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return math.nan
    if any(math.isinf(v) for v in vals):
        return math.inf
    return math.fsum(vals) / len(vals)


def psnr_mean(values: Sequence[float]) -> float:
    """Mean of PSNR-type values, each capped at PSNR_CAP_DB (so never infinite)."""
    return finite_mean([capped_psnr(v) for v in values if v is not None])


def _bpp_outliers(rows: Sequence[ImageResult]) -> tuple[float, list[tuple[int, float]]]:
    """(median bpp, [(image id, bpp) above BPP_OUTLIER_FACTOR × median], highest first)."""
    bpps = [r.bpp for r in rows if r.bpp is not None]
    if not bpps:
        return math.nan, []
    median = statistics.median(bpps)
    if median <= 0:
        return median, []
    out = [(r.image_id, r.bpp) for r in rows
           if r.bpp is not None and r.bpp > BPP_OUTLIER_FACTOR * median]
    return median, sorted(out, key=lambda t: (-t[1], t[0]))


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
            median, outliers = _bpp_outliers(ok)
            outlier_ids = {i for i, _ in outliers}
            capped = sum(1 for r in ok
                         if any(v is not None and v > PSNR_CAP_DB
                                for v in (r.psnr, r.roi_psnr, r.bg_psnr)))
            skipped = sum(1 for r in ok if MS_SSIM_SKIPPED in (r.notes or ""))
            partial = 0 < skipped < len(ok)
            out.append(QualitySummary(
                codec=group[0].codec,
                label=label,
                quality=quality,
                images=len(group),
                errors=len(group) - len(ok),
                bpp_mean=finite_mean([r.bpp for r in ok]),
                bpp_pooled=8.0 * sum(r.bytes for r in ok) / pixels if pixels else math.nan,
                psnr=psnr_mean([r.psnr for r in ok]),
                roi_psnr=psnr_mean([r.roi_psnr for r in ok]),
                bg_psnr=psnr_mean([r.bg_psnr for r in ok]),
                ms_ssim=math.nan if partial else finite_mean([r.ms_ssim for r in ok]),
                encode_s=finite_mean([r.encode_s for r in ok]),
                decode_s=finite_mean([r.decode_s for r in ok]),
                bpp_median=median,
                bpp_outliers=outliers,
                bpp_mean_inliers=finite_mean([r.bpp for r in ok if r.image_id not in outlier_ids]),
                psnr_capped=capped,
                ms_ssim_skipped=skipped if partial else 0,
            ))
    return out


def summary_notes(summaries: Sequence[QualitySummary]) -> list[str]:
    """One line per (label, quality) with bpp outliers, capped PSNR values or MS-SSIM on
    only part of the images."""
    lines = []
    for s in summaries:
        where = f"{s.label} {s.quality}"
        if s.bpp_outliers:
            shown = ", ".join(f"image {i} ({b:.4g} bpp, {b / s.bpp_median:.0f}× the median)"
                              for i, b in s.bpp_outliers[:5])
            more = len(s.bpp_outliers) - 5
            lines.append(
                f"{where}: {len(s.bpp_outliers)} bpp outlier(s) above "
                f"{BPP_OUTLIER_FACTOR:g}× the median {s.bpp_median:.4f} bpp: {shown}"
                + (f" and {more} more" if more > 0 else "")
                + f"; bpp (mean) {s.bpp_mean:.4f} includes them, "
                f"{s.bpp_mean_inliers:.4f} without")
        if s.psnr_capped:
            lines.append(f"{where}: {s.psnr_capped} image(s) with PSNR above "
                         f"{PSNR_CAP_DB:g} dB (+inf for identical pixels), counted as "
                         f"{PSNR_CAP_DB:g} dB in the means")
        if s.ms_ssim_skipped:
            lines.append(ms_ssim_gap_note(s))
    return lines


def ms_ssim_gap_note(s: QualitySummary) -> str:
    """The note for a (label, quality) whose MS-SSIM is left out because some of its images
    were coded without it; ``bench run``'s table and ``bench report`` print the same line."""
    return (f"{s.label} {s.quality}: MS-SSIM left out: {s.ms_ssim_skipped} of "
            f"{s.images - s.errors} image(s) were coded with --metrics psnr, so a mean would "
            "cover only the others; recompute them with the same command, default --metrics "
            "and --force")


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
    """A plain-text table; ``extra`` adds (column id, header) task columns after bpp.

    The :func:`summary_notes` (bpp outliers, capped PSNR) follow the table.
    """
    cols = list(_HEADERS)
    cols[6:6] = [(a, h, _TASK_FORMAT) for a, h in extra]
    body = [[_cell(s.value(a), f) for a, _, f in cols] for s in summaries]
    heads = [h for _, h, _ in cols]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h)
              for i, h in enumerate(heads)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(heads, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    notes = summary_notes(summaries)
    if notes:
        lines += ["", "notes:"] + [f"  {n}" for n in notes]
    return "\n".join(lines)
