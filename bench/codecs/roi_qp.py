"""ROI through an encoder's own spatial rate control: the mask as ffmpeg region-of-interest data.

ffmpeg's ``addroi`` filter attaches rectangles with a quantiser offset to each frame; an
encoder that honours that side data raises or lowers its QP block by block. Of the encoders
in the shipped ffmpeg (9.0), only libx265 does so for the codecs bench wraps: libaom-av1,
libsvtav1 and libvvenc ignore the side data (checked: same bytes with and without it), and
VTM has no per-block QP input (only per-picture ``dQPFile``, luma-driven QP and its own AQ).

libx265 (``libavcodec/libx265.c``) turns the regions into one QP offset per 16x16 block
(8x8 when ``qg-size=8``): ``qoffset`` x ``qp_range`` with ``qp_range = 51 + 6 (bit depth - 8)``,
the first region listed winning where regions overlap. x265 applies the offsets only with
adaptive quantisation on (``aq-mode`` >= 1 and ``aq-strength`` > 0) and not at a fixed QP, so
the ROI variant codes at ``crf`` equal to the grid QP (for a lone intra picture with
``cutree=0`` this is the same QP: identical stream sizes measured) with ``aq-mode=1`` and
``aq-strength=0.001`` (variance-based offsets of a thousandth of a QP: a frame sent without
region data came out at 6,049 bytes against uniform hevc's 6,047 on COCO 139 at QP 37, and
the tests hold an all-ROI frame to 1 % of uniform hevc's size).

But x265 applies QP per quantisation group, 32x32 at ``preset=veryslow`` (its info SEI:
``qg-size=32``), from the mean of the offsets inside it (and larger CUs likewise), so a
group only partly in the ROI was coded up to the background's offset coarser than the grid
QP: with 16x16 blocks the ROI lost 0.40 dB against uniform hevc at the same QP (6 val2017
pictures, +12 QP), and a lone 16x16 object at QP 37 4.3 dB. The mask therefore becomes
32x32 blocks (:data:`X265_BLOCK`; a block belongs to the ROI when any of its pixels does),
whole groups, which keeps the ROI at the grid QP (-0.01 dB). The ROI blocks become
rectangles (runs of a block row, merged down the rows while they stay the same), listed first
with offset 0, followed by one full-frame rectangle with the background offset.

The background offset (:data:`bench.codecs.hevc.ROI_QP_DELTA`, 16) was chosen with
``benchmarks/roi_qp_tune.py --images 6 --blocks 16,32 --deltas 6,9,12,16,20`` (6 val2017
pictures with 10-60 % object cover, hevc grid points qp42..qp17, BD-rate on ROI-PSNR against
uniform hevc): with 32x32 blocks -12.4 % (+6 QP), -15.5 % (+9), -17.4 % (+12), -18.7 % (+16),
-18.9 % (+20), the last two alike on the ROI while +20 costs the whole picture much more
(BD-rate on PSNR +153 % against +89 %); with the 16x16 blocks used before, -16.1 % at +12
at best (a coarser background also costs the ROI blocks next to it, which predict from it).
On the 79 shared images (README) +16 also gives the best mask AP, while detection AP came out
about 8 points better at +8 and +12, within the noise of AP over 79 images; ``bench run
--roi-qp-delta`` runs another offset.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

#: Block size of the ROI's mask: x265's quantisation group at ``preset=veryslow`` (ffmpeg
#: hands it offsets per 16x16 block, which it averages over each 32x32 group)
X265_BLOCK = 32


def roi_blocks(roi: np.ndarray | None, height: int, width: int, block: int) -> np.ndarray:
    """Boolean ``ceil(H/block) x ceil(W/block)`` map: blocks holding any ROI pixel.

    ``roi`` may be smaller than ``height`` x ``width`` (the picture padded for the encoder);
    the padding is background. None or an empty mask gives no ROI block.
    """
    rows, cols = -(-height // block), -(-width // block)
    if roi is None or not roi.any():
        return np.zeros((rows, cols), bool)
    padded = np.zeros((rows * block, cols * block), bool)
    padded[: roi.shape[0], : roi.shape[1]] = roi
    return padded.reshape(rows, block, cols, block).any(axis=(1, 3))


def block_rectangles(blocks: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Rectangles ``(col, row, cols, rows)`` (in blocks) that cover exactly the True blocks.

    Each row's runs of True blocks are merged with the identical runs of the rows below.
    """
    open_runs: dict[tuple[int, int], int] = {}  # (col, cols) -> first row
    rects = []
    for r in range(blocks.shape[0] + 1):
        runs = set()
        if r < blocks.shape[0]:
            row = np.concatenate(([False], blocks[r], [False]))
            edges = np.flatnonzero(row[1:] != row[:-1])
            runs = {(int(a), int(b - a)) for a, b in zip(edges[::2], edges[1::2], strict=True)}
        for run in [run for run in open_runs if run not in runs]:
            start = open_runs.pop(run)
            rects.append((run[0], start, run[1], r - start))
        for run in runs:
            open_runs.setdefault(run, r)
    return sorted(rects, key=lambda rect: (rect[1], rect[0]))


def addroi_filter(
    roi: np.ndarray | None,
    height: int,
    width: int,
    background_offset: int,
    qp_range: int,
    block: int = X265_BLOCK,
) -> str:
    """ffmpeg filter chain marking the ROI blocks with QP offset 0 and the rest of the
    ``height`` x ``width`` picture with ``background_offset`` QP (``qp_range``: the
    encoder's scale of ``qoffset``)."""
    if not 0 <= background_offset <= qp_range:
        raise ValueError(f"background QP offset {background_offset} outside 0..{qp_range}")
    parts = []
    for c, r, n, m in block_rectangles(roi_blocks(roi, height, width, block)):
        x, y = c * block, r * block  # clipped to the picture: edge blocks may overhang it
        w, h = min(n * block, width - x), min(m * block, height - y)
        parts.append(f"addroi=x={x}:y={y}:w={w}:h={h}:qoffset=0")
    offset = Fraction(background_offset, qp_range)
    parts.append(f"addroi=x=0:y=0:w=iw:h=ih:qoffset={offset.numerator}/{offset.denominator}")
    return ",".join(parts)
