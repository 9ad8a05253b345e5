"""GeneralizedGaussianConditional: training semantics, shape modes and table indexes."""

from __future__ import annotations

import pytest
import torch
from compressai.models.google import get_scale_table

from bench.entropy import (
    GeneralizedGaussianConditional,
    NearestScaleGaussianConditional,
    beta_from_raw,
    raw_from_beta,
)

SHAPE = (2, 3, 5, 7)


def _latent(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    y = torch.randn(SHAPE, generator=gen) * 4
    scales = torch.rand(SHAPE, generator=gen) * 3 + 0.3
    means = torch.randn(SHAPE, generator=gen)
    return y, scales, means


def test_training_forward_uses_noise_for_rate_and_ste_for_outputs() -> None:
    model = GeneralizedGaussianConditional("model")
    y, scales, means = _latent()
    y.requires_grad_()
    torch.manual_seed(0)
    y_hat, lik = model(y, scales, means, training=True)
    assert torch.equal(y_hat.detach(), torch.round(y - means).detach() + means)
    y_hat.sum().backward()
    assert torch.equal(y.grad, torch.ones_like(y))  # straight-through
    rounded = model.likelihood(y_hat.detach(), scales, means)
    assert not torch.allclose(lik.detach(), rounded)  # the rate saw y + U(-1/2, 1/2)
    torch.manual_seed(0)
    noise = torch.empty_like(y).uniform_(-0.5, 0.5)
    assert torch.allclose(lik.detach(), model.likelihood(y.detach() + noise, scales, means))


def test_eval_forward_rounds_around_the_mean() -> None:
    model = GeneralizedGaussianConditional("model").eval()
    y, scales, means = _latent(1)
    y_hat, lik = model(y, scales, means)
    assert torch.equal(y_hat, torch.round(y - means) + means)
    assert torch.equal(lik, model.likelihood(y_hat, scales, means))
    noisy = GeneralizedGaussianConditional("model", ste_outputs=False)
    out, _ = noisy(y, scales, means, training=True)
    assert (out - y).abs().max() <= 0.5 and not torch.equal(out, y_hat)


@pytest.mark.parametrize("mode", ["model", "channel", "element"])
def test_shape_modes_receive_gradients(mode: str) -> None:
    model = GeneralizedGaussianConditional(mode, channels=SHAPE[1], beta_init=1.3)
    y, scales, means = _latent(2)
    raw = torch.zeros(SHAPE, requires_grad=True) if mode == "element" else None
    beta = model.beta(y, raw)
    expected = {"model": (1,), "channel": (1, SHAPE[1], 1, 1), "element": SHAPE}[mode]
    assert tuple(beta.shape) == expected
    _, lik = model(y, scales, means, beta_raw=raw, training=True)
    (-torch.log2(lik).sum()).backward()
    grad = raw.grad if raw is not None else model.gg_shape.raw.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    if mode != "element":
        assert torch.allclose(beta.detach().reshape(-1), torch.full((beta.numel(),), 1.3))


def test_shape_mode_errors() -> None:
    y, scales, _ = _latent()
    with pytest.raises(ValueError):
        GeneralizedGaussianConditional("element").likelihood(y, scales)
    with pytest.raises(ValueError):
        GeneralizedGaussianConditional("model").likelihood(y, scales, beta_raw=y)
    with pytest.raises(ValueError):
        GeneralizedGaussianConditional("channel")
    with pytest.raises(ValueError):
        GeneralizedGaussianConditional("channel", channels=4).likelihood(y, scales)
    with pytest.raises(ValueError):
        GeneralizedGaussianConditional("per-pixel")


def test_beta_parametrization_and_clamp() -> None:
    raw = torch.tensor([-1e4, -3.0, 0.0, 2.0, 1e4])
    beta = beta_from_raw(raw, 0.5, 4.0)
    assert float(beta[0]) == 0.5 and float(beta[-1]) == 4.0
    assert torch.all(beta[1:] >= beta[:-1])
    middle = torch.tensor([0.7, 1.0, 2.0, 3.5])
    assert torch.allclose(beta_from_raw(raw_from_beta(middle, 0.5), 0.5, 4.0), middle)


def _index_random_parameters(model, seed: int, log_alpha: tuple[float, float]):
    """Random (beta, alpha) of shape 1×4×32×32 indexed by ``model``: returns beta, raw shape,
    indexes, the tables' (alpha, beta), the bounded alpha and each element's grid row."""
    gen = torch.Generator().manual_seed(seed)
    shape = (1, 4, 32, 32)
    beta = torch.empty(shape, dtype=torch.float64).uniform_(0.5, 4.0, generator=gen)
    alpha = torch.exp(torch.empty(shape, dtype=torch.float64).uniform_(*log_alpha, generator=gen))
    raw = raw_from_beta(beta, 0.5)
    indexes = model.build_indexes(alpha, raw)
    alpha_q, beta_q = model.table_parameters(indexes)
    bounded = model.bounded_scales(alpha, beta_from_raw(raw, 0.5, 4.0)).detach()
    return beta, raw, indexes, alpha_q, beta_q, bounded, model.grid.beta_index(beta)


def test_build_indexes_nearest_beta_and_upper_alpha() -> None:
    model = GeneralizedGaussianConditional("element")
    beta, raw, indexes, alpha_q, beta_q, bounded, row = _index_random_parameters(model, 4, (-9, 7))
    assert indexes.dtype == torch.int32 and indexes.shape == beta.shape
    grid = model.grid.betas
    nearest = grid[(torch.log(beta)[..., None] - torch.log(grid)).abs().argmin(-1)]
    assert torch.equal(beta_q, nearest)
    step = torch.exp(model.grid.log_step)[row]
    bottom = torch.exp(model.grid.log_alpha_lo)[row]
    top = torch.exp(model.grid.log_alpha_lo + model.grid.log_step * 63)[row]
    in_range = (bounded >= bottom) & (bounded <= top)
    assert in_range.float().mean() > 0.5
    assert torch.equal(alpha_q[bounded < bottom], bottom[bounded < bottom])
    assert torch.equal(alpha_q[bounded > top], top[bounded > top].to(alpha_q))
    upper = alpha_q >= bounded * (1 - 1e-6)
    assert bool(upper[in_range].all())
    assert bool((alpha_q[in_range] / step[in_range] < bounded[in_range] * (1 + 1e-6)).all())
    # table-quantized parameters map to themselves
    again = model.build_indexes(alpha_q, raw_from_beta(beta_q, 0.5).double())
    assert torch.equal(again, indexes)


@pytest.mark.parametrize("levels", [64, 256, 1024])
def test_grid_scales_map_to_themselves_after_a_float32_round_trip(levels: int) -> None:
    """Table scales handed back as float32 (a network's dtype) find their own table with
    upper rounding, however fine the grid (256 levels: 575 of 4,864 were one table up with a
    fixed 1e-6-step tolerance), and a scale a little above a grid point still goes up."""
    from bench.entropy.bounds import DynamicScaleBound
    from bench.entropy.tables import TableGrid

    grid = TableGrid.create(DynamicScaleBound(), alpha_levels=levels)
    alpha, beta = grid.table_alpha(), grid.table_beta()
    want = torch.arange(grid.num_tables)
    assert torch.equal(grid.index(alpha.float(), beta.float()).long(), want)
    assert torch.equal(grid.index(alpha, beta).long(), want)
    k = want % levels
    above = grid.index(alpha * torch.exp(grid.log_step.repeat_interleave(levels) * 1e-3), beta)
    assert torch.equal(above.long()[k < levels - 1], want[k < levels - 1] + 1)


def test_build_indexes_nearest_alpha() -> None:
    """``scale_rounding="nearest"``: within half a grid step in log space, either side."""
    model = GeneralizedGaussianConditional("element", scale_rounding="nearest")
    _, _, indexes, alpha_q, beta_q, bounded, row = _index_random_parameters(model, 5, (-2, 5))
    step = model.grid.log_step[row]
    top = model.grid.log_alpha_lo + model.grid.log_step * 63
    log_b = torch.log(bounded)
    in_range = (log_b >= model.grid.log_alpha_lo[row]) & (log_b <= top[row])
    err = (torch.log(alpha_q) - torch.log(bounded))[in_range] / step[in_range]
    assert float(err.abs().max()) <= 0.5 + 1e-9
    assert float((err < 0).float().mean()) > 0.3  # rounds down as well as up
    again = model.build_indexes(alpha_q, raw_from_beta(beta_q, 0.5).double())
    assert torch.equal(again, indexes)


def test_scale_rounding_must_be_known() -> None:
    with pytest.raises(ValueError, match="scale_rounding"):
        GeneralizedGaussianConditional("element", scale_rounding="down")


def test_nearest_scale_gaussian_indexes_and_round_trip() -> None:
    """The baseline's Gaussian: nearest table scale in log space, bit-exact decode."""
    model = NearestScaleGaussianConditional(None)
    model.update_scale_table(get_scale_table())
    table = model.scale_table.double()
    gen = torch.Generator().manual_seed(6)
    scales = torch.exp(torch.empty(1, 8, 16, 16).uniform_(-2.5, 5.5, generator=gen))
    idx = model.build_indexes(scales).long()
    assert model.build_indexes(scales).dtype == torch.int32
    bounded = model.lower_bound_scale(scales).double()
    dist = (torch.log(table)[None, None, None, None, :] - torch.log(bounded)[..., None]).abs()
    assert torch.equal(idx, dist.argmin(-1))
    assert bool((table[idx] < bounded).any())  # compressai's rule would never pick a lower scale
    means = torch.randn(scales.shape, generator=gen)
    y = means + scales * torch.randn(scales.shape, generator=gen)
    strings = model.compress(y, idx.int(), means=means)
    y_hat = model.decompress(strings, idx.int(), means=means)
    assert torch.equal(y_hat, torch.round(y - means) + means)


def test_half_widths_without_a_density_limit_follow_the_tail_quantile():
    from bench.entropy.tables import table_half_widths

    alphas = torch.tensor([0.2, 2.0, 20.0], dtype=torch.float64)
    betas = torch.tensor([0.6, 1.0, 2.0], dtype=torch.float64)
    limited = table_half_widths(alphas, betas, 1e-9, 1e-6, 10_000)
    unlimited = table_half_widths(alphas, betas, 1e-9, 0.0, 10_000)
    # with the limit off, only the tail quantile (and the cap) decide; the heavy tail
    # (beta 0.6) is where the density limit cuts the table
    assert (unlimited >= limited).all() and unlimited[0] > limited[0]
    assert (table_half_widths(alphas, betas, 1e-9, 0.0, 7) <= 7).all()
