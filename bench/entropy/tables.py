"""The (alpha x beta) grid of GG coding tables and the parameter-to-table index map.

compressai's ``GaussianConditional`` codes with one quantized CDF per entry of a 64-value
log-spaced scale table and maps each scale to the *upper* neighbouring entry (a wider
distribution than the true one, which only costs a little rate). Here there is one CDF per
(shape, scale) pair:

* shapes: ``beta_levels`` values log-spaced over ``[beta_min, beta_max]`` (rounded to 12
  decimals so that round values such as 0.5, 1, 2, 4 are hit exactly); a shape maps to the
  nearest grid value in log space;
* scales, per shape ``beta_j``: ``alpha_levels`` values log-spaced from the dynamic bound
  ``alpha_min(beta_j)`` (:mod:`bench.entropy.bounds`) up to the scale whose standard
  deviation is ``max_std``, i.e. ``max_std * sqrt(Gamma(1/b) / Gamma(3/b))``; a scale maps to the
  upper neighbour (``scale_rounding="upper"``, compressai's rule) or to the nearest one in
  log space (``"nearest"``). For ``beta = 2`` the grid is exactly ``sqrt(2)`` times
  compressai's default scale table (0.11 .. 256, 64 levels), so Gaussian sources code
  (nearly) identically.

Why "nearest" exists: the upper neighbour always widens the distribution, a bias whose cost is
first order in the grid step. On the latents of the ``ggm`` codec part way through training
(COCO val, 64 scale levels) it made the bitstream 3.5 % longer than the model's own rate
estimate; the nearest neighbour in log space, whose errors cancel to first order, made it 0.1 %.

The flattened table index is ``j * alpha_levels + k``. Each CDF covers the symbols
``-n..n`` (``n`` from :func:`table_half_widths`: the ``tail_mass`` quantile, shortened where
the density falls below ``min_symbol_prob``, capped); everything outside goes through the
rANS escape symbol, whose probability is the exact remaining tail mass. The bin masses come
from the very function of the training likelihood (``gg_math.gg_bin_mass_nograd``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from compressai._CXX import pmf_to_quantized_cdf
from torch import Tensor

from .bounds import DynamicScaleBound
from .gg_math import gg_bin_mass_nograd, gg_std_factor, gg_tail_mass, gg_tail_quantile

__all__ = ["SCALE_ROUNDINGS", "CdfTables", "TableGrid", "build_cdf_tables", "table_half_widths"]

#: How a scale maps onto its shape row of the grid (see :meth:`TableGrid.index`).
SCALE_ROUNDINGS = ("upper", "nearest")

#: Tolerance (in grid steps) under which a scale on a grid point maps to that point, so that
#: table-quantized scales map to themselves; at least four float32 roundings of a scale
#: (2⁻²⁴ each in log α), so that a grid of fine steps (256 levels: 575 of 4,864 tables
#: were off by one) keeps that after a float32 round trip too.
_GRID_TOLERANCE = 1e-6
_FLOAT32_LOG_ERROR = 4 * 2.0**-24


@dataclass(frozen=True)
class TableGrid:
    """Shape grid and per-shape log-spaced scale grids (float64 CPU tensors).

    Attributes:
        betas: the ``J`` grid shapes.
        log_alpha_lo: ``log`` of the smallest scale of each shape's grid.
        log_step: ``log`` ratio between consecutive scales of each shape's grid.
        alpha_levels: ``K``, the number of scales per shape.
        scale_rounding: ``"upper"`` (the upper grid neighbour) or ``"nearest"`` (in log space).
    """

    betas: Tensor
    log_alpha_lo: Tensor
    log_step: Tensor
    alpha_levels: int
    scale_rounding: str = "upper"

    @classmethod
    def create(
        cls,
        bound: DynamicScaleBound,
        beta_levels: int = 19,
        alpha_levels: int = 64,
        max_std: float = 256.0,
        scale_rounding: str = "upper",
    ) -> TableGrid:
        """Build the grid for the shape range of ``bound`` (see the module docstring)."""
        if beta_levels < 2 or alpha_levels < 2:
            raise ValueError("need at least 2 shape and 2 scale levels")
        if scale_rounding not in SCALE_ROUNDINGS:
            raise ValueError(f"scale_rounding must be one of {SCALE_ROUNDINGS}, "
                             f"got {scale_rounding!r}")
        log_b = np.linspace(np.log(bound.beta_min), np.log(bound.beta_max), beta_levels)
        betas = torch.from_numpy(np.round(np.exp(log_b), 12))
        with torch.no_grad():
            log_lo = bound.log_bound(betas)
        log_hi = np.log(max_std) - torch.log(gg_std_factor(betas))
        if bool((log_hi <= log_lo).any()):
            raise ValueError(f"max_std {max_std} is below the scale bound for some shape")
        log_step = (log_hi - log_lo) / (alpha_levels - 1)
        return cls(betas, log_lo, log_step, int(alpha_levels), scale_rounding)

    @property
    def num_tables(self) -> int:
        """Number of CDF tables ``J * K``."""
        return self.betas.numel() * self.alpha_levels

    def table_alpha(self) -> Tensor:
        """Scale of every table, in flattened index order (float64)."""
        k = torch.arange(self.alpha_levels, dtype=torch.float64)
        log_a = self.log_alpha_lo[:, None] + self.log_step[:, None] * k[None, :]
        return torch.exp(log_a).reshape(-1)

    def table_beta(self) -> Tensor:
        """Shape of every table, in flattened index order (float64)."""
        return self.betas.repeat_interleave(self.alpha_levels)

    def beta_index(self, beta: Tensor) -> Tensor:
        """Nearest grid shape (in log space) of each ``beta``, as int64 indexes."""
        log_b = torch.log(self.betas)
        mids = torch.exp(0.5 * (log_b[1:] + log_b[:-1])).to(beta.device)
        return torch.bucketize(beta.detach().double(), mids)

    def index(self, alpha: Tensor, beta: Tensor) -> Tensor:
        """Flattened table index (int32) for (already lower-bounded) ``alpha`` and ``beta``.

        The shapes broadcast; the scale maps to the upper or the nearest (log space) grid
        neighbour of its shape row, as ``scale_rounding`` says.
        """
        j = self.beta_index(beta)
        lo = self.log_alpha_lo.to(alpha.device)[j]
        step = self.log_step.to(alpha.device)[j]
        pos = (torch.log(alpha.detach().double()) - lo) / step
        if self.scale_rounding == "upper":
            k = torch.ceil(pos - torch.clamp(_FLOAT32_LOG_ERROR / step, min=_GRID_TOLERANCE))
        else:
            k = torch.round(pos)
        k = k.clamp_(0, self.alpha_levels - 1).long()
        return (j * self.alpha_levels + k).int()


@dataclass(frozen=True)
class CdfTables:
    """Ragged quantized CDF tables in compressai's layout, concatenated.

    Table ``t`` is ``cdf[start[t] : start[t] + length[t]]``: ``length - 2`` symbol
    frequencies plus the escape symbol, then the total ``2**precision``; its first symbol
    is ``offset[t]`` (as compressai's ``_quantized_cdf``, ``_cdf_length`` and ``_offset``).
    """

    cdf: Tensor
    start: Tensor
    length: Tensor
    offset: Tensor


def _ragged_values(half: Tensor) -> tuple[Tensor, Tensor]:
    """Table id and symbol value of every pmf entry for tables covering ``-half..half``."""
    pmf_len = 2 * half + 1
    table_id = torch.repeat_interleave(torch.arange(half.numel()), pmf_len)
    first = torch.cumsum(pmf_len, 0) - pmf_len
    position = torch.arange(int(pmf_len.sum())) - first[table_id]
    return table_id, position - half[table_id]


def table_half_widths(
    alphas: Tensor, betas: Tensor, tail_mass: float, min_symbol_prob: float, max_half_width: int
) -> Tensor:
    """Half-width ``n`` of each table: the smallest of three limits (at least 1).

    * the two-sided ``tail_mass`` quantile (compressai's rule);
    * where the density drops below ``min_symbol_prob``: the rANS quantizer gives every
      symbol at least ``2**-16`` of the code space, so a long run of symbols far below that
      wastes rate (measured: up to 3.4 % for wide heavy-tailed tables with the quantile rule
      alone, <= 0.75 % with ``min_symbol_prob = 1e-6``); rarer symbols take the escape path;
      ``min_symbol_prob <= 0`` turns this limit off;
    * ``max_half_width``, a hard cap on the table length.
    """
    quantile = torch.from_numpy(gg_tail_quantile(betas.numpy(), tail_mass))
    by_tail = torch.ceil(alphas * quantile)
    if min_symbol_prob <= 0:
        return by_tail.clamp(1, max_half_width).long()
    log_norm = torch.log(betas / (2.0 * alphas)) - torch.lgamma(betas.reciprocal())
    excess = (log_norm - math.log(min_symbol_prob)).clamp(min=0.0)
    by_density = torch.ceil(alphas * excess.pow(betas.reciprocal()))
    return torch.minimum(by_tail, by_density).clamp(1, max_half_width).long()


def build_cdf_tables(
    grid: TableGrid,
    tail_mass: float,
    max_half_width: int,
    min_symbol_prob: float = 1e-6,
    precision: int = 16,
) -> CdfTables:
    """Compute the GG bin masses of every grid point and quantize them to rANS CDFs.

    The per-table quantization is compressai's ``pmf_to_quantized_cdf`` (every symbol,
    escape included, keeps a frequency of at least one), as in ``EntropyModel._pmf_to_cdf``.
    """
    alphas, betas = grid.table_alpha(), grid.table_beta()
    half = table_half_widths(alphas, betas, tail_mass, min_symbol_prob, max_half_width)
    table_id, values = _ragged_values(half)
    pmf = gg_bin_mass_nograd(values.double(), alphas[table_id], betas[table_id])
    tails = gg_tail_mass(half.double(), alphas, betas)
    pmf_list, tail_list = pmf.tolist(), tails.tolist()
    cdfs: list[int] = []
    begin = 0
    for t, n in enumerate(half.tolist()):
        end = begin + 2 * n + 1
        cdfs.extend(pmf_to_quantized_cdf(pmf_list[begin:end] + [tail_list[t]], precision))
        begin = end
    length = 2 * half + 3
    start = torch.cumsum(length, 0) - length
    return CdfTables(
        cdf=torch.tensor(cdfs, dtype=torch.int32),
        start=start,
        length=length.int(),
        offset=(-half).int(),
    )
