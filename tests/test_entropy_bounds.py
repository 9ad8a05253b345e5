"""The shape-dependent scale bound: defining equation, gradient, annealing, bound gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bench.entropy import (
    DynamicScaleBound,
    alpha_bound_exact,
    gaussian_zero_bin_tail,
    gg_bin_mass,
    lower_bound,
)

P0 = math.erf(0.5 / (0.11 * math.sqrt(2.0)))  # Gaussian zero-bin probability at sigma = 0.11


def test_bound_is_gaussian_bound_at_beta_two() -> None:
    bound = DynamicScaleBound()
    got = bound.bound(torch.tensor([2.0], dtype=torch.float64))
    assert abs(float(got) - 0.11 * math.sqrt(2.0)) < 1e-12


def test_zero_bin_probability_matches_gaussian_for_every_beta() -> None:
    bound = DynamicScaleBound()
    drawn = torch.rand(50, generator=torch.Generator().manual_seed(5)).double()
    betas = torch.cat([torch.linspace(0.5, 4.0, 37, dtype=torch.float64), drawn * 3.5 + 0.5])
    alpha_min = bound.bound(betas)
    zero_bin = gg_bin_mass(torch.zeros_like(betas), alpha_min, betas)
    # compare the tiny complements 1 - p to keep relative precision (1 - p0 ~ 6e-6)
    tail = 1.0 - zero_bin
    assert torch.allclose(tail, torch.full_like(tail, 1.0 - P0), rtol=1e-6, atol=0)
    assert abs(gaussian_zero_bin_tail(0.11) - (1.0 - P0)) < 1e-15
    exact = torch.from_numpy(alpha_bound_exact(betas.numpy(), 1.0 - P0))
    assert torch.allclose(alpha_min, exact, rtol=1e-9, atol=0)


def test_heavy_tails_get_a_much_smaller_bound() -> None:
    bound = DynamicScaleBound()
    values = bound.bound(torch.tensor([0.5, 1.0, 2.0, 4.0], dtype=torch.float64))
    assert values[0] < values[2] / 50
    assert bool(torch.all(values[1:] > values[:-1]))


def test_bound_gradient_matches_exact_derivative() -> None:
    bound = DynamicScaleBound()
    betas = torch.tensor([0.55, 0.8, 1.0, 1.37, 2.0, 2.9, 3.9], dtype=torch.float64)
    betas.requires_grad_()
    bound.bound(betas).sum().backward()
    h = 1e-6
    b = betas.detach().numpy()
    upper = alpha_bound_exact(b + h, 1.0 - P0)
    lower = alpha_bound_exact(b - h, 1.0 - P0)
    ref = (upper - lower) / (2 * h)
    assert np.allclose(betas.grad.numpy(), ref, rtol=1e-5, atol=0)
    check = torch.tensor([0.7, 1.9, 3.3], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(bound.bound, (check,), eps=1e-6, atol=1e-9)


def test_checkpoints_with_the_old_unit_anneal_factor_still_load() -> None:
    """The released weights hold ``anneal_factor`` = 1 (annealing was never used): they load;
    a factor other than 1 would have changed the bound, so it is refused, saying why."""
    bound = DynamicScaleBound()
    assert "anneal_factor" not in bound.state_dict()
    bound.load_state_dict({"anneal_factor": torch.tensor([1.0])})
    with pytest.raises(ValueError, match="annealed scale bound"):
        bound.load_state_dict({"anneal_factor": torch.tensor([3.0])})


def test_lower_bound_gradients() -> None:
    x = torch.tensor([0.05, 0.5, 0.05], requires_grad=True)
    b = torch.tensor([0.1, 0.1, 0.1], requires_grad=True)
    out = lower_bound(x, b)
    assert torch.equal(out.detach(), torch.tensor([0.1, 0.5, 0.1]))
    out.backward(torch.tensor([1.0, 1.0, -1.0]))
    # x: kept where unbounded or where the gradient pushes x up (compressai's LowerBound)
    assert torch.equal(x.grad, torch.tensor([0.0, 1.0, -1.0]))
    # bound: gets the gradient wherever it is active
    assert torch.equal(b.grad, torch.tensor([1.0, 0.0, -1.0]))


def test_bounded_scale_is_differentiable_in_beta() -> None:
    bound = DynamicScaleBound()
    beta = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    alpha = torch.tensor([1e-6, 10.0], dtype=torch.float64)
    bounded = bound(alpha, beta)
    assert float(bounded[0].detach()) > 1e-3 and float(bounded[1].detach()) == 10.0
    bounded.sum().backward()
    assert float(beta.grad) > 0  # alpha_min grows with beta
