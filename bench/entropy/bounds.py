"""Shape-dependent ("dynamic") lower bound on the GG scale.

compressai's ``GaussianConditional`` bounds the scale from below, ``sigma >= 0.11``, which
caps the probability of the zero bin at ``p0 = P_N(|x| < 1/2; sigma = 0.11)``. For a GG the
same ``alpha`` bound means very different zero-bin probabilities for different shapes, so
the bound here is the one that gives, for every ``beta``, that same largest zero-bin
probability::

    P_GG(|x| < 1/2; alpha_min(beta), beta) = P(1/beta, (0.5 / alpha_min)**beta) = p0
    =>  alpha_min(beta) = 0.5 / Pinv(1/beta, p0) ** (1/beta)

with ``Pinv`` the inverse regularized lower incomplete gamma function (solved through
``scipy.special.gammainccinv(1/beta, 1 - p0)`` for precision, since ``1 - p0 ~ 6e-6``). At
``beta = 2`` it is ``0.11 * sqrt(2)`` (the Gaussian bound); at ``beta = 0.5`` it is ~2e-3.

Torch has no inverse incomplete gamma, so ``log alpha_min`` is tabulated once over a fine
uniform grid of ``beta`` together with its derivative (central difference of the exact
root, step 1e-5) and evaluated by cubic Hermite interpolation: C1 in ``beta``, accurate to
~1e-12 relative with 1025 nodes, cheap for per-element shapes, and differentiable with
plain autograd.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.special
import torch
from torch import Tensor, nn

__all__ = [
    "DynamicScaleBound",
    "LowerBoundWithGradient",
    "alpha_bound_exact",
    "gaussian_zero_bin_tail",
    "lower_bound",
]


def gaussian_zero_bin_tail(sigma: float) -> float:
    """``1 - P_N(|x| < 1/2; sigma)`` = ``erfc(0.5 / (sigma sqrt 2))``, computed without loss."""
    return math.erfc(0.5 / (sigma * math.sqrt(2.0)))


def alpha_bound_exact(beta: np.ndarray, zero_bin_tail: float) -> np.ndarray:
    """Exact ``alpha_min(beta)`` (float64, numpy) for a zero-bin tail ``1 - p0``."""
    beta = np.asarray(beta, dtype=np.float64)
    a = 1.0 / beta
    z = scipy.special.gammainccinv(a, zero_bin_tail)
    return 0.5 / z**a


def _log_bound_and_slope(
    nodes: np.ndarray, zero_bin_tail: float, step: float = 1e-5
) -> tuple[np.ndarray, np.ndarray]:
    """``log alpha_min`` at the nodes and its beta-derivative (central difference)."""
    values = np.log(alpha_bound_exact(nodes, zero_bin_tail))
    upper = np.log(alpha_bound_exact(nodes + step, zero_bin_tail))
    lower = np.log(alpha_bound_exact(nodes - step, zero_bin_tail))
    return values, (upper - lower) / (2.0 * step)


def _hermite(values: Tensor, slopes: Tensor, start: float, step: float, x: Tensor) -> Tensor:
    """Cubic Hermite interpolation on a uniform grid (``x`` clamped to the grid range)."""
    t = ((x - start) / step).clamp(0.0, values.numel() - 1.0)
    idx = t.detach().floor().clamp(max=values.numel() - 2).long()
    u = t - idx.to(t.dtype)
    y0, y1 = values[idx], values[idx + 1]
    m0, m1 = slopes[idx] * step, slopes[idx + 1] * step
    u2 = u * u
    u3 = u2 * u
    return (
        (2 * u3 - 3 * u2 + 1) * y0
        + (u3 - 2 * u2 + u) * m0
        + (-2 * u3 + 3 * u2) * y1
        + (u3 - u2) * m1
    )


class LowerBoundWithGradient(torch.autograd.Function):
    """``max(x, bound)`` where both ``x`` and the (tensor) ``bound`` get gradients.

    ``x`` gets compressai's ``LowerBound`` pass-through gradient (kept where ``x >= bound``
    or where the gradient would push ``x`` up, so a bounded value can leave the bound);
    ``bound`` gets the gradient where it is active (``x < bound``), which makes the bounded
    scale differentiable in ``beta``.
    """

    @staticmethod
    def forward(ctx, x: Tensor, bound: Tensor) -> Tensor:
        """``max(x, bound)``; saves both for the backward."""
        ctx.save_for_backward(x, bound)
        ctx.bound_shape = bound.shape
        return torch.maximum(x, bound)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """Pass-through gradient for ``x``, active-set gradient for ``bound``."""
        x, bound = ctx.saved_tensors
        active = x < bound
        g_x = g_b = None
        if ctx.needs_input_grad[0]:
            g_x = grad * ((~active) | (grad < 0)).to(grad.dtype)
            if g_x.shape != x.shape:
                g_x = g_x.sum_to_size(x.shape)
        if ctx.needs_input_grad[1]:
            g_b = (grad * active.to(grad.dtype)).sum_to_size(ctx.bound_shape)
        return g_x, g_b


def lower_bound(x: Tensor, bound: Tensor) -> Tensor:
    """Apply :class:`LowerBoundWithGradient`."""
    return LowerBoundWithGradient.apply(x, bound)


class DynamicScaleBound(nn.Module):
    """Lower bound ``alpha >= alpha_min(beta)`` on the GG scale, the same in training and
    in coding (the table grid is built on it), so train and test behave alike.

    Args:
        beta_min, beta_max: range of shapes the bound is tabulated on (inputs are clamped).
        gaussian_scale_bound: the Gaussian ``sigma`` bound whose zero-bin probability is
            matched (compressai's 0.11).
        nodes: number of tabulation nodes (uniform in ``beta``).

    Checkpoints written before the bound lost its (never used) annealing factor hold an
    ``anneal_factor`` buffer; it is accepted when it is 1, i.e. when it changed nothing.
    """

    def __init__(
        self,
        beta_min: float = 0.5,
        beta_max: float = 4.0,
        gaussian_scale_bound: float = 0.11,
        nodes: int = 1025,
    ) -> None:
        super().__init__()
        if not 0 < beta_min < beta_max:
            raise ValueError(f"need 0 < beta_min < beta_max, got {beta_min}, {beta_max}")
        self.beta_min = float(beta_min)
        self.beta_max = float(beta_max)
        self.gaussian_scale_bound = float(gaussian_scale_bound)
        self.zero_bin_tail = gaussian_zero_bin_tail(self.gaussian_scale_bound)
        grid = np.linspace(self.beta_min, self.beta_max, nodes)
        values, slopes = _log_bound_and_slope(grid, self.zero_bin_tail)
        self._step = float(grid[1] - grid[0])
        # Plain float64 attributes (not buffers): immune to ``module.float()``/``.half()``.
        self._log_values = torch.from_numpy(values)
        self._log_slopes = torch.from_numpy(slopes)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        legacy = state_dict.pop(prefix + "anneal_factor", None)
        if legacy is not None and not bool(torch.all(legacy == 1)):
            raise ValueError(f"{prefix}anneal_factor is {legacy.tolist()}: this checkpoint was "
                             "trained with an annealed scale bound, which this version of the "
                             "GGM no longer has")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def log_bound(self, beta: Tensor) -> Tensor:
        """``log alpha_min(beta)`` (differentiable in ``beta``)."""
        values = self._log_values.to(device=beta.device, dtype=beta.dtype)
        slopes = self._log_slopes.to(device=beta.device, dtype=beta.dtype)
        return _hermite(values, slopes, self.beta_min, self._step, beta)

    def bound(self, beta: Tensor) -> Tensor:
        """The bound ``alpha_min(beta)``."""
        return torch.exp(self.log_bound(beta))

    def forward(self, alpha: Tensor, beta: Tensor) -> Tensor:
        """Return ``max(alpha, bound(beta))`` with gradients to ``alpha`` and ``beta``."""
        return lower_bound(alpha, self.bound(beta).to(alpha.dtype))

    def extra_repr(self) -> str:
        """Configuration shown by ``repr(module)``."""
        return (
            f"beta=[{self.beta_min}, {self.beta_max}], "
            f"gaussian_scale_bound={self.gaussian_scale_bound}"
        )
