"""Quality maps: from an ROI and the codec's quality grid, and random ones for training.

A quality map ``q`` is an H×W map in [0, 1]; the training loss weights each pixel's squared
error by ``lambda(q) = LAMBDA_MIN * (LAMBDA_MAX / LAMBDA_MIN) ** q`` (log-linear, 0.001 to
0.1), as in the spatially-adaptive variable-rate codec of Song et al., ICCV 2021
("Variable-rate deep image compression through spatially-adaptive feature transform").

At coding time quality levels are integer *codes* ``0..Q_STEPS`` (``q = code / Q_STEPS``) so
that the encoder and the decoder use bit-identical values. The decoder sees the map at latent
resolution only: the block maximum over ``LATENT_STRIDE``² pixels (a block that touches the
ROI gets the ROI quality); that low-resolution map travels in the bitstream
(:mod:`bench.learned.bitstream`).

The named quality grid maps each point to ``(q_roi, q_bg)`` for ROI coding and to ``q_uni``
for uniform coding (``roi="none"``, e.g. for Kodak).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LAMBDA_MIN = 0.001
LAMBDA_MAX = 0.1
Q_STEPS = 100
LATENT_STRIDE = 16
ROI_MODES = ("gt", "none")


def lambda_of_q(q, lambda_min: float = LAMBDA_MIN, lambda_max: float = LAMBDA_MAX):
    """``lambda(q)`` for a float, numpy array or torch tensor ``q`` in [0, 1].

    Log-linear from ``lambda_min`` at q = 0 to ``lambda_max`` at q = 1 (release 1: 0.001 to
    0.1; a training recipe may set its own range).
    """
    ratio = math.log(lambda_max / lambda_min)
    if isinstance(q, (int, float)):
        return lambda_min * math.exp(ratio * q)
    return lambda_min * (q * ratio).exp() if hasattr(q, "exp") else lambda_min * np.exp(q * ratio)


@dataclass(frozen=True)
class GridPoint:
    """One named point of the quality grid, as integer codes (``q = code / Q_STEPS``)."""

    name: str
    roi: int
    bg: int
    uniform: int


#: Low to high rate (release 2). ROI coding: the background starts at the lowest quality and
#: the ROI/background gap is widest (44–46 codes, a λ ratio of about 13) in the lower middle
#: of the grid, narrowing to 30 at the top. Uniform coding: each point's code gives about the
#: rate of its ROI point (rounded up) on COCO pictures whose objects cover 10–60 % of the
#: area, matched with ``benchmarks/learned_grid.py`` on 16 train2017 images, so a grid name
#: means one rate budget in both modes where ROI coding has a choice to make (pictures that
#: are mostly object cost more in ROI mode). About 0.15–0.86 bpp on such pictures: lower
#: rates need a model trained further (the background's floor is q = 0).
GRID: tuple[GridPoint, ...] = (
    GridPoint("q1", 24, 0, 13),
    GridPoint("q2", 34, 0, 18),
    GridPoint("q3", 45, 4, 25),
    GridPoint("q4", 56, 11, 34),
    GridPoint("q5", 67, 21, 43),
    GridPoint("q6", 78, 33, 54),
    GridPoint("q7", 90, 47, 66),
    GridPoint("q8", 100, 70, 82),
)
GRID_NAMES = tuple(p.name for p in GRID)


def grid_point(name: str) -> GridPoint:
    for p in GRID:
        if p.name == name:
            return p
    raise ValueError(f"no quality {name!r}; the grid is {', '.join(GRID_NAMES)}")


def grid_description() -> str:
    """Compact text of the grid, for version strings and model cards."""
    return ",".join(f"{p.name}={p.roi}/{p.bg}/{p.uniform}" for p in GRID)


def code_map(shape: tuple[int, int], roi: np.ndarray | None, point: GridPoint,
             mode: str = "gt") -> np.ndarray:
    """Full-resolution map of quality codes (uint8) for an image of ``shape``.

    ``mode="gt"``: ``point.roi`` inside ``roi``, ``point.bg`` outside (``roi=None`` means no
    ROI information: uniform ``point.uniform``). ``mode="none"``: uniform ``point.uniform``.
    """
    if mode not in ROI_MODES:
        raise ValueError(f"roi mode must be one of {ROI_MODES}, got {mode!r}")
    h, w = shape
    if mode == "none" or roi is None:
        return np.full((h, w), point.uniform, np.uint8)
    roi = np.asarray(roi, dtype=bool)
    if roi.shape != (h, w):
        raise ValueError(f"roi mask is {roi.shape}, the image {(h, w)}")
    return np.where(roi, point.roi, point.bg).astype(np.uint8)


def pad_to_multiple(array: np.ndarray, multiple: int = LATENT_STRIDE) -> np.ndarray:
    """Edge-replicate the first two axes up to multiples of ``multiple``."""
    h, w = array.shape[:2]
    ph, pw = (-h) % multiple, (-w) % multiple
    if not ph and not pw:
        return array
    pad = [(0, ph), (0, pw)] + [(0, 0)] * (array.ndim - 2)
    return np.pad(array, pad, mode="edge")


def block_max(codes: np.ndarray, stride: int = LATENT_STRIDE) -> np.ndarray:
    """Maximum over ``stride``×``stride`` blocks of a map already padded to the multiple."""
    h, w = codes.shape
    if h % stride or w % stride:
        raise ValueError(f"map {codes.shape} is not a multiple of {stride}")
    return codes.reshape(h // stride, stride, w // stride, stride).max(axis=(1, 3))


# ---------------------------------------------------------------- training generators
def uniform_qmap(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """One level drawn uniformly in [0, 1]."""
    return np.full((h, w), rng.uniform(0.0, 1.0), np.float32)


def instance_qmap(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Background level plus a level per instance (label ``k > 0``).

    Half of the time all instances share one level above the background (the two-level
    maps of ROI coding), otherwise each instance gets its own random level.
    """
    bg = rng.uniform(0.0, 0.8)
    ids = [int(i) for i in np.unique(labels) if i > 0]
    out = np.full(labels.shape, bg, np.float32)
    if rng.random() < 0.5:
        level = rng.uniform(bg, 1.0)
        out[labels > 0] = level
    else:
        for i in ids:
            out[labels == i] = rng.uniform(0.0, 1.0)
    return out


def roi_qmap(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Two levels, as ROI coding uses the codec: every instance at one level above the
    background (background in [0, 0.7], ROI at least 0.1 above it)."""
    bg = rng.uniform(0.0, 0.7)
    out = np.full(labels.shape, bg, np.float32)
    out[labels > 0] = rng.uniform(bg + 0.1, 1.0)
    return out


def gradient_qmap(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A linear ramp between two random levels in a random direction."""
    a, b = rng.uniform(0.0, 1.0, size=2)
    theta = rng.uniform(0.0, 2 * np.pi)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    t = x * np.cos(theta) + y * np.sin(theta)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    return (a + (b - a) * t).astype(np.float32)


def blob_qmap(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Background level plus 1–5 random ellipses with their own (hard-edged) levels."""
    out = np.full((h, w), rng.uniform(0.0, 1.0), np.float32)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    for _ in range(int(rng.integers(1, 6))):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = rng.uniform(0.05, 0.4) * h, rng.uniform(0.05, 0.4) * w
        theta = rng.uniform(0, np.pi)
        dy, dx = y - cy, x - cx
        u = dx * np.cos(theta) + dy * np.sin(theta)
        v = -dx * np.sin(theta) + dy * np.cos(theta)
        out[(u / rx) ** 2 + (v / ry) ** 2 <= 1.0] = rng.uniform(0.0, 1.0)
    return out


GENERATORS = ("uniform", "instances", "gradient", "blobs", "roi")
#: Generators that need instance labels.
NEEDS_LABELS = ("instances", "roi")
#: Release 1's mix of generators.
DEFAULT_WEIGHTS = {"uniform": 0.25, "instances": 0.35, "gradient": 0.15, "blobs": 0.25}


def random_qmap(h: int, w: int, rng: np.random.Generator,
                labels: np.ndarray | None = None,
                weights: dict[str, float] | None = None) -> tuple[np.ndarray, str]:
    """A training quality map and the name of the generator that drew it.

    ``weights`` (default :data:`DEFAULT_WEIGHTS`) is the mix of generators; ``labels`` (H×W
    instance ids, 0 = background) enables those of :data:`NEEDS_LABELS`; crops without
    objects (or from unannotated images) use the others.
    """
    weights = DEFAULT_WEIGHTS if weights is None else weights
    has_objects = labels is not None and labels.any()
    kinds = [k for k in GENERATORS if weights.get(k, 0) > 0
             and (k not in NEEDS_LABELS or has_objects)]
    p = np.array([weights[k] for k in kinds])
    kind = kinds[int(rng.choice(len(kinds), p=p / p.sum()))]
    if kind == "uniform":
        return uniform_qmap(h, w, rng), kind
    if kind == "instances":
        return instance_qmap(labels, rng), kind
    if kind == "roi":
        return roi_qmap(labels, rng), kind
    if kind == "gradient":
        return gradient_qmap(h, w, rng), kind
    return blob_qmap(h, w, rng), kind
