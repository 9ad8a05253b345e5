"""GG bin masses and their gradients against scipy, mpmath and compressai (real numbers)."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch
from compressai.entropy_models import GaussianConditional
from scipy.stats import gennorm

from bench.entropy import GeneralizedGaussianConditional, gg_bin_mass, gg_cdf, raw_from_beta

BETAS = (0.5, 1.0, 1.5, 2.0, 3.0)


def scipy_bin_mass(v: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """Mass of [v - 1/2, v + 1/2] under gennorm(beta, scale=alpha), tail-accurate."""
    dist = gennorm(beta, scale=alpha)
    lo, hi = v - 0.5, v + 0.5
    upper = dist.sf(lo) - dist.sf(hi)  # both edges >= 0
    lower = dist.cdf(hi) - dist.cdf(lo)  # both edges <= 0
    middle = 1.0 - dist.cdf(lo) - dist.sf(hi)  # straddles zero
    return np.where(lo >= 0, upper, np.where(hi <= 0, lower, middle))


@pytest.mark.parametrize("beta", BETAS)
def test_bin_mass_matches_scipy_gennorm(beta: float) -> None:
    y_hat = np.array([-150.0, -40.0, -7.0, -2.0, -1.0, 0.0, 1.0, 3.0, 12.0, 300.0])
    means = np.array([0.0, 0.37, -2.2, 0.5])
    values = (y_hat[:, None] - means[None, :]).reshape(-1)
    for alpha in (1e-3, 0.05, 0.7, 3.0, 40.0, 1e4):
        ref = scipy_bin_mass(values, alpha, beta)
        got = gg_bin_mass(torch.from_numpy(values), alpha, beta).numpy()
        meaningful = ref > 1e-250
        assert np.all(np.abs(got[~meaningful]) < 1e-240)
        rel = np.abs(got[meaningful] - ref[meaningful]) / ref[meaningful]
        assert rel.max() < 1e-6, (alpha, beta, rel.max())


@pytest.mark.parametrize("beta", BETAS)
def test_bin_mass_is_the_difference_of_the_gg_cdf(beta: float) -> None:
    """The mission's formula: P(y) = F(y + 1/2) - F(y - 1/2) with the GG CDF
    F(x) = 1/2 + sign(x)/2 P(1/beta, (|x|/alpha)^beta), where that difference is accurate."""
    v = torch.linspace(-6.0, 6.0, 49, dtype=torch.float64)
    for alpha in (0.3, 1.0, 4.0):
        ref = gg_cdf(v + 0.5, alpha, beta) - gg_cdf(v - 0.5, alpha, beta)
        keep = ref > 1e-4  # the CDF difference cancels in the tails (error ~ 1e-16 / ref)
        got = gg_bin_mass(v, alpha, beta)
        assert torch.allclose(got[keep], ref[keep], rtol=1e-9, atol=0.0)
        assert keep.sum() >= 5
    assert gg_cdf(torch.tensor([0.0], dtype=torch.float64), 1.0, beta).item() == 0.5


def test_model_likelihood_applies_floor_and_matches_scipy() -> None:
    model = GeneralizedGaussianConditional("element")
    values = torch.linspace(-30, 30, 121, dtype=torch.float64)
    for beta in BETAS:
        raw = raw_from_beta(torch.full_like(values, beta), 0.5).double()
        lik = model.likelihood(values, torch.full_like(values, 2.5), beta_raw=raw)
        ref = np.maximum(scipy_bin_mass(values.numpy(), 2.5, beta), 1e-9)
        assert np.allclose(lik.detach().numpy(), ref, rtol=1e-6, atol=0)


def test_beta_two_matches_compressai_gaussian_conditional() -> None:
    gen = torch.Generator().manual_seed(0)
    shape = (2, 4, 16, 16)
    sigma = torch.exp(torch.empty(shape, dtype=torch.float64).uniform_(-3.5, 4, generator=gen))
    means = torch.randn(shape, generator=gen, dtype=torch.float64) * 3
    y_hat = torch.round(means + torch.randn(shape, generator=gen, dtype=torch.float64) * sigma)
    gauss = GaussianConditional(None).double()
    ref = gauss.likelihood_lower_bound(gauss._likelihood(y_hat, sigma, means))
    ggm = GeneralizedGaussianConditional("element").double()
    raw = raw_from_beta(torch.full(shape, 2.0, dtype=torch.float64), 0.5)
    got = ggm.likelihood(y_hat, sigma * math.sqrt(2.0), means, beta_raw=raw)
    assert (sigma < 0.11).any()  # the (dynamic) scale bound is exercised too
    assert torch.allclose(got, ref, rtol=1e-6, atol=0)


def _mp_bin_mass(v: mpmath.mpf, alpha: mpmath.mpf, beta: mpmath.mpf) -> mpmath.mpf:
    """High-precision GG bin mass via mpmath's regularized upper incomplete gamma."""

    def cdf(x: mpmath.mpf) -> mpmath.mpf:
        q = mpmath.gammainc(1 / beta, (abs(x) / alpha) ** beta, mpmath.inf, regularized=True)
        return q / 2 if x < 0 else 1 - q / 2

    half = mpmath.mpf(1) / 2
    return cdf(v + half) - cdf(v - half)


def test_gradients_match_mpmath() -> None:
    mpmath.mp.dps = 30
    points = [
        (v, a, b)
        for v in (-3.2, -0.3, 0.0, 0.7, 2.0, 7.5)
        for a in (0.3, 1.0, 4.0)
        for b in (0.5, 1.0, 1.5, 2.0, 3.0)
    ]
    v = torch.tensor([p[0] for p in points], dtype=torch.float64, requires_grad=True)
    a = torch.tensor([p[1] for p in points], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([p[2] for p in points], dtype=torch.float64, requires_grad=True)
    gg_bin_mass(v, a, b).sum().backward()
    for i, (vv, aa, bb) in enumerate(points):
        vm, am, bm = (mpmath.mpf(x) for x in (vv, aa, bb))
        mass = _mp_bin_mass(vm, am, bm)
        if mass < 1e-30:
            continue
        refs = (
            mpmath.diff(lambda x: _mp_bin_mass(x, am, bm), vm),  # noqa: B023
            mpmath.diff(lambda x: _mp_bin_mass(vm, x, bm), am),  # noqa: B023
            mpmath.diff(lambda x: _mp_bin_mass(vm, am, x), bm),  # noqa: B023
        )
        for got, ref in zip((v.grad[i], a.grad[i], b.grad[i]), refs, strict=True):
            # relative to the derivative, or to the mass where the derivative is ~0 (v = 0)
            scale = max(abs(float(ref)), float(mass) * 1e-3)
            assert abs(float(got) - float(ref)) <= 1e-4 * scale, (vv, aa, bb, got, ref)


def test_gradcheck_float64_with_broadcast_shapes() -> None:
    gen = torch.Generator().manual_seed(1)
    v = (torch.randn(2, 3, 4, 4, generator=gen, dtype=torch.float64) * 3).requires_grad_()
    alpha = (torch.rand(2, 3, 4, 4, generator=gen, dtype=torch.float64) * 3 + 0.2).requires_grad_()
    beta = torch.tensor([0.6, 1.3, 2.7], dtype=torch.float64).reshape(1, 3, 1, 1).requires_grad_()
    assert torch.autograd.gradcheck(gg_bin_mass, (v, alpha, beta), eps=1e-6, atol=1e-8)
    scalar_beta = torch.tensor([1.7], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(gg_bin_mass, (v, alpha, scalar_beta), eps=1e-6, atol=1e-8)


def test_model_likelihood_gradcheck_through_shape_parametrization() -> None:
    model = GeneralizedGaussianConditional("element").double()
    gen = torch.Generator().manual_seed(2)
    y = (torch.randn(1, 2, 3, 3, generator=gen, dtype=torch.float64) * 2).requires_grad_()
    scales = (torch.rand(1, 2, 3, 3, generator=gen, dtype=torch.float64) + 0.5).requires_grad_()
    means = torch.randn(1, 2, 3, 3, generator=gen, dtype=torch.float64).requires_grad_()
    raw = torch.randn(1, 2, 3, 3, generator=gen, dtype=torch.float64).requires_grad_()

    def fn(*args: torch.Tensor) -> torch.Tensor:
        return model.likelihood(args[0], args[1], args[2], beta_raw=args[3])

    assert torch.autograd.gradcheck(fn, (y, scales, means, raw), eps=1e-6, atol=1e-8)


def test_float32_matches_float64() -> None:
    gen = torch.Generator().manual_seed(3)
    v64 = torch.randn(4000, generator=gen, dtype=torch.float64) * 4
    a64 = torch.exp(torch.empty(4000, dtype=torch.float64).uniform_(-1, 2.5, generator=gen))
    b64 = torch.empty(4000, dtype=torch.float64).uniform_(0.5, 4.0, generator=gen)
    grads = {}
    for dtype in (torch.float32, torch.float64):
        args = [t.to(dtype).requires_grad_() for t in (v64, a64, b64)]
        mass = gg_bin_mass(*args)
        mass.sum().backward()
        grads[dtype] = (mass.detach().double(), *(t.grad.double() for t in args))
    keep = grads[torch.float64][0] > 1e-4
    for got, ref in zip(grads[torch.float32], grads[torch.float64], strict=True):
        err = (got - ref).abs()[keep]
        scale = ref.abs()[keep] + 1e-3 * grads[torch.float64][0][keep]
        assert (err / scale).max() < 2e-3
