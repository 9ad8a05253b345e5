"""Generalized Gaussian (GG) distribution maths with a custom autograd bin-mass function.

The zero-mean generalized Gaussian (a.k.a. generalized normal, exponential power) with
scale ``alpha`` > 0 and shape ``beta`` > 0 has the density (Nadarajah 2005, "A generalized
normal distribution", Journal of Applied Statistics 32(7), eq. 1)::

    f(x; alpha, beta) = beta / (2 alpha Gamma(1/beta)) * exp(-(|x| / alpha) ** beta)

``beta = 2`` is a Gaussian with ``sigma = alpha / sqrt(2)``, ``beta = 1`` a Laplacian. Its CDF
is written with the regularized lower incomplete gamma function ``P(a, z)``
(``torch.special.gammainc``) and its complement ``Q = 1 - P`` (``gammaincc``)::

    F(x) = 1/2 + sign(x)/2 * P(1/beta, (|x|/alpha) ** beta)
         = Q(1/beta, (|x|/alpha) ** beta) / 2               for x < 0

(Nadarajah 2005, eq. 3; the same form is used by ``scipy.stats.gennorm``). The mass of the
quantization bin of width one around a centred value ``v = y_hat - mu`` is
``F(v + 1/2) - F(v - 1/2)``; it is the likelihood of the GG model for learned image
compression of Zhang et al. 2024 ("Generalized Gaussian Model for Learned Image
Compression"), which replaces the Gaussian conditional of the mean-scale hyperprior
(Ballé et al. 2018, Minnen et al. 2018; compressai's ``GaussianConditional``).

Gradients (see :class:`GGBinMass`): the value and ``alpha`` derivatives are analytic through
the density; PyTorch has no derivative of ``P(a, z)`` with respect to ``a``, so that single
partial derivative is a central finite difference in float64 with step :data:`FD_STEP_A`.
"""

from __future__ import annotations

import numpy as np
import scipy.special
import torch
from torch import Tensor

__all__ = [
    "FD_STEP_A",
    "GGBinMass",
    "gg_bin_mass",
    "gg_bin_mass_nograd",
    "gg_cdf",
    "gg_log_density",
    "gg_std_factor",
    "gg_tail_mass",
    "gg_tail_quantile",
    "sample_gg",
]

#: Step in ``a = 1/beta`` of the central difference for dQ(a, z)/da, always taken in
#: float64. The truncation error is ~h**2 |d3Q/da3| / 6 ~ 1e-10 and the round-off error is
#: ~eps(gammaincc) / h ~ 1e-16 / 1e-5 = 1e-11: measured against mpmath the relative error is
#: <= 3e-9 for a in [1/4, 2] and z in [1e-6, 80]. In float32 the same step would give
#: round-off ~6e-8 / 1e-5 ~ 1e-2 (garbage), hence float64 is used for every dtype.
FD_STEP_A: float = 1e-5


def _edges(w: Tensor) -> tuple[Tensor, Tensor]:
    """Return the bin edges of ``|v|``: ``w + 1/2`` (always > 0) and ``w - 1/2``."""
    return w + 0.5, w - 0.5


def _z(edge_abs: Tensor, alpha: Tensor, beta: Tensor) -> Tensor:
    """The incomplete-gamma argument ``(|edge| / alpha) ** beta``."""
    return (edge_abs / alpha).pow(beta)


def _bin_mass_from_q(q_lo: Tensor, q_hi: Tensor, e_lo: Tensor) -> Tensor:
    """Combine the two tail probabilities into the bin mass (see :func:`gg_bin_mass`).

    With ``w = |v|`` the upper edge ``w + 1/2`` is positive so ``F(hi) = 1 - Q_hi / 2``;
    the lower edge gives ``F(lo) = 1 - Q_lo / 2`` if it is >= 0, else ``Q_lo / 2``. Working
    with ``Q`` (the upper tail) keeps full relative precision for far-away bins.
    """
    outer = 0.5 * (q_lo - q_hi)
    central = 1.0 - 0.5 * (q_lo + q_hi)
    return torch.where(e_lo >= 0, outer, central)


def gg_bin_mass_nograd(v: Tensor, alpha: Tensor, beta: Tensor) -> Tensor:
    """Bin mass ``F(v + 1/2) - F(v - 1/2)`` without a custom backward (broadcasting).

    The single definition of the bin mass: the training likelihood (:class:`GGBinMass`)
    and the coding tables (:mod:`bench.entropy.tables`) both call it.
    """
    a = beta.reciprocal()
    e_hi, e_lo = _edges(v.abs())
    q_hi = torch.special.gammaincc(a, _z(e_hi, alpha, beta))
    q_lo = torch.special.gammaincc(a, _z(e_lo.abs(), alpha, beta))
    return _bin_mass_from_q(q_lo, q_hi, e_lo)


def _dq_da(a: Tensor, z: Tensor) -> Tensor:
    """Central finite difference of ``Q(a, z)`` with respect to ``a`` (float64 result)."""
    a64 = a.double()
    z64 = z.double()
    q_plus = torch.special.gammaincc(a64 + FD_STEP_A, z64)
    q_minus = torch.special.gammaincc(a64 - FD_STEP_A, z64)
    return (q_plus - q_minus) / (2.0 * FD_STEP_A)


def _dq_dbeta(edge_abs: Tensor, alpha: Tensor, beta: Tensor, dens: Tensor) -> Tensor:
    """Total derivative of ``Q(1/beta, (|e|/alpha)**beta)`` with respect to ``beta``.

    ``dQ/dbeta = -dQ/da / beta**2 - (2 |e| / beta) f(e) log(|e| / alpha)``: the first term
    is the finite difference (through ``a = 1/beta``), the second the analytic derivative of
    ``Q`` in its second argument (``dQ/dz = -z**(a-1) exp(-z) / Gamma(a)``) times
    ``dz/dbeta = z log(|e|/alpha)``; ``0 * log 0`` is taken as its limit 0.
    """
    a = beta.reciprocal()
    fd = _dq_da(a, _z(edge_abs, alpha, beta)).to(dens.dtype)
    ratio = edge_abs / alpha
    safe_log = torch.log(torch.where(ratio > 0, ratio, torch.ones_like(ratio)))
    analytic = 2.0 * edge_abs / beta * dens * safe_log
    return -fd / (beta * beta) - analytic


def _density(edge_abs: Tensor, alpha: Tensor, beta: Tensor, log_norm: Tensor) -> Tensor:
    """GG density at ``|edge|``; ``log_norm = log(beta / (2 alpha Gamma(1/beta)))``."""
    return torch.exp(log_norm - _z(edge_abs, alpha, beta))


def _reduce_to(grad: Tensor, shape: torch.Size) -> Tensor:
    """Sum a broadcast gradient back to the shape of the input it belongs to."""
    if grad.shape == shape:
        return grad
    return grad.sum_to_size(shape)


class GGBinMass(torch.autograd.Function):
    """Autograd function for the GG bin mass ``F(v + 1/2) - F(v - 1/2)``.

    Inputs ``v`` (centred value), ``alpha`` (scale) and ``beta`` (shape) broadcast against
    each other. Backward (with ``f`` the density, ``lo = v - 1/2``, ``hi = v + 1/2``)::

        d/dv     = f(hi) - f(lo)
        d/dalpha = (lo f(lo) - hi f(hi)) / alpha          (F(x) depends on x / alpha)
        d/dbeta  = dF(hi)/dbeta - dF(lo)/dbeta            (see ``_dq_dbeta``)

    The value and ``alpha`` parts are computed in the input dtype; the ``beta`` part uses
    the float64 central difference of ``Q`` in ``a = 1/beta`` (step :data:`FD_STEP_A`).
    """

    @staticmethod
    def forward(ctx, v: Tensor, alpha: Tensor, beta: Tensor) -> Tensor:
        """Bin mass of ``v`` under GG(0, alpha, beta) (see :func:`gg_bin_mass_nograd`)."""
        ctx.save_for_backward(v, alpha, beta)
        return gg_bin_mass_nograd(v, alpha, beta)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        """Analytic value/scale gradients, finite-difference shape gradient."""
        v, alpha, beta = ctx.saved_tensors
        need_v, need_alpha, need_beta = ctx.needs_input_grad
        w = v.abs()
        e_hi, e_lo = _edges(w)
        lo_abs = e_lo.abs()
        log_norm = torch.log(beta / (2.0 * alpha)) - torch.lgamma(beta.reciprocal())
        f_hi = _density(e_hi, alpha, beta, log_norm)
        f_lo = _density(lo_abs, alpha, beta, log_norm)
        g_v = g_alpha = g_beta = None
        if need_v:
            g_v = _reduce_to(grad * torch.sign(v) * (f_hi - f_lo), v.shape)
        if need_alpha:
            g_alpha = _reduce_to(grad * (e_lo * f_lo - e_hi * f_hi) / alpha, alpha.shape)
        if need_beta:
            d_hi = _dq_dbeta(e_hi, alpha, beta, f_hi)
            d_lo = _dq_dbeta(lo_abs, alpha, beta, f_lo)
            side = torch.where(e_lo >= 0, 1.0, -1.0).to(d_lo.dtype)
            g_beta = _reduce_to(grad * 0.5 * (side * d_lo - d_hi), beta.shape)
        return g_v, g_alpha, g_beta


def _as_tensor(x: Tensor | float, like: Tensor) -> Tensor:
    """Turn a Python number into a tensor of ``like``'s dtype and device."""
    if isinstance(x, Tensor):
        return x
    return torch.tensor(float(x), dtype=like.dtype, device=like.device)


def gg_bin_mass(v: Tensor, alpha: Tensor | float, beta: Tensor | float) -> Tensor:
    """Probability of the unit bin around the centred value ``v`` under GG(0, alpha, beta).

    Differentiable in all three arguments (:class:`GGBinMass`); no likelihood floor.
    """
    return GGBinMass.apply(v, _as_tensor(alpha, v), _as_tensor(beta, v))


def gg_cdf(x: Tensor, alpha: Tensor | float, beta: Tensor | float) -> Tensor:
    """GG CDF ``1/2 + sign(x)/2 * P(1/beta, (|x|/alpha)**beta)`` (Nadarajah 2005, eq. 3).

    Plain torch ops (autograd only through ``x`` and ``alpha``); meant for checks.
    """
    alpha = _as_tensor(alpha, x)
    beta = _as_tensor(beta, x)
    half_q = 0.5 * torch.special.gammaincc(beta.reciprocal(), _z(x.abs(), alpha, beta))
    return torch.where(x < 0, half_q, 1.0 - half_q)


def gg_log_density(x: Tensor, alpha: Tensor | float, beta: Tensor | float) -> Tensor:
    """Log of the GG density ``beta / (2 alpha Gamma(1/beta)) exp(-(|x|/alpha)**beta)``."""
    alpha = _as_tensor(alpha, x)
    beta = _as_tensor(beta, x)
    log_norm = torch.log(beta / (2.0 * alpha)) - torch.lgamma(beta.reciprocal())
    return log_norm - _z(x.abs(), alpha, beta)


def gg_std_factor(beta: Tensor) -> Tensor:
    """Standard deviation of GG(0, 1, beta): ``sqrt(Gamma(3/beta) / Gamma(1/beta))``.

    (Nadarajah 2005, moments section.) Used to give every shape a comparable scale range.
    """
    return torch.exp(0.5 * (torch.lgamma(3.0 / beta) - torch.lgamma(1.0 / beta)))


def gg_tail_mass(n: Tensor, alpha: Tensor, beta: Tensor) -> Tensor:
    """Two-sided mass outside ``[-n - 1/2, n + 1/2]``: ``Q(1/beta, ((n + 1/2)/alpha)**beta)``.

    This equals ``1 - sum`` of the bin masses of ``-n..n`` computed by the same ``F``.
    """
    return torch.special.gammaincc(beta.reciprocal(), _z(n + 0.5, alpha, beta))


def gg_tail_quantile(beta: np.ndarray, tail_mass: float) -> np.ndarray:
    """Half-width ``t`` in units of alpha with two-sided tail mass ``P(|x| > t alpha)``.

    ``Q(1/beta, t**beta) = tail_mass`` solved with ``scipy.special.gammainccinv`` (float64).
    For ``beta = 2`` this is ``Phi^-1(1 - tail/2) / sqrt(2)``, compressai's multiplier.
    """
    beta = np.asarray(beta, dtype=np.float64)
    return scipy.special.gammainccinv(1.0 / beta, tail_mass) ** (1.0 / beta)


def sample_gg(
    shape: tuple[int, ...],
    alpha: Tensor | float,
    beta: Tensor | float,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """Draw GG(0, alpha, beta) samples: ``sign * alpha * G**(1/beta)``, ``G ~ Gamma(1/beta)``.

    (If ``X ~ GG(0, 1, beta)`` then ``|X|**beta ~ Gamma(1/beta, 1)``; Nadarajah 2005.)
    ``alpha`` and ``beta`` may be tensors broadcastable to ``shape``; ``generator`` seeds
    the draw (numpy's gamma sampler is used because torch's takes no generator).
    """
    beta64 = torch.as_tensor(beta, dtype=torch.float64).expand(shape)
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator).item())
    rng = np.random.default_rng(seed)
    gam = torch.from_numpy(rng.standard_gamma(beta64.reciprocal().numpy()))
    sign = torch.from_numpy(rng.integers(0, 2, size=shape) * 2 - 1).double()
    unit = sign * gam.pow(beta64.reciprocal())
    return (unit * torch.as_tensor(alpha, dtype=torch.float64)).to(dtype)
