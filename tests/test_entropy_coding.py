"""Real rANS bitstreams of the GGM: exact round trips, rate accuracy, GGM vs Gaussian."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from compressai.entropy_models import GaussianConditional
from compressai.models.google import get_scale_table

from bench.entropy import (
    GeneralizedGaussianConditional,
    gg_bin_mass,
    gg_log_density,
    gg_std_factor,
    raw_from_beta,
    sample_gg,
)


@pytest.fixture(scope="module")
def ggm() -> GeneralizedGaussianConditional:
    """One element-mode GGM with built tables, shared by the tests of this module."""
    model = GeneralizedGaussianConditional("element")
    model.update()
    return model


@pytest.fixture(scope="module")
def gaussian() -> GaussianConditional:
    """compressai's Gaussian conditional with its default 64-entry scale table."""
    model = GaussianConditional(None)
    model.update_scale_table(get_scale_table().tolist())
    return model


def random_latent(shape: tuple[int, ...], seed: int, extremes: bool = True) -> dict:
    """GG latents over many (alpha, beta), optionally with far out-of-table values."""
    gen = torch.Generator().manual_seed(seed)
    beta = torch.empty(shape, dtype=torch.float64).uniform_(0.5, 4.0, generator=gen)
    alpha = torch.exp(torch.empty(shape, dtype=torch.float64).uniform_(-9, 7, generator=gen))
    means = torch.randn(shape, generator=gen, dtype=torch.float64) * 5
    y = means + sample_gg(shape, alpha, beta, gen)
    if extremes:
        flat = y.view(-1)
        picks = torch.randperm(flat.numel(), generator=gen)[: max(4, flat.numel() // 200)]
        magnitudes = torch.tensor([3e2, 5e3, 1e5, 2e7], dtype=torch.float64)
        flat[picks] = magnitudes[torch.arange(picks.numel()) % 4] * (
            torch.randint(0, 2, (picks.numel(),), generator=gen) * 2 - 1
        )
    return {
        "y": y.float(),
        "means": means.float(),
        "alpha": alpha.float(),
        "beta_raw": raw_from_beta(beta, 0.5).float(),
    }


def test_round_trip_exact_over_many_parameters_with_escapes(ggm) -> None:
    lat = random_latent((3, 16, 24, 24), seed=0)
    indexes = ggm.build_indexes(lat["alpha"], lat["beta_raw"])
    assert indexes.unique().numel() > 500  # many (alpha, beta) tables in use
    strings = ggm.compress(lat["y"], indexes, lat["means"])
    assert len(strings) == 3 and all(isinstance(s, bytes) for s in strings)
    decoded = ggm.decompress(strings, indexes, means=lat["means"])
    expected = torch.round(lat["y"] - lat["means"]) + lat["means"]
    assert torch.equal(decoded, expected)
    assert (lat["y"].abs() > 1e7).any()


@pytest.mark.parametrize("mode", ["model", "channel"])
def test_round_trip_learned_shape_modes(mode: str) -> None:
    model = GeneralizedGaussianConditional(mode, channels=8, beta_init=0.9)
    model.update()
    lat = random_latent((2, 8, 12, 12), seed=1)
    indexes = model.build_indexes(lat["alpha"])
    strings = model.compress(lat["y"], indexes, lat["means"])
    decoded = model.decompress(strings, indexes, means=lat["means"])
    assert torch.equal(decoded, torch.round(lat["y"] - lat["means"]) + lat["means"])


DECODER_SCRIPT = textwrap.dedent(
    """
    import sys
    import torch
    from bench.entropy import GeneralizedGaussianConditional

    folder = sys.argv[1]
    data = torch.load(folder + "/stream.pt")
    rebuilt = GeneralizedGaussianConditional("element")
    rebuilt.update()
    loaded = GeneralizedGaussianConditional("element")
    loaded.load_state_dict(torch.load(folder + "/model.pt"))
    for name, model in (("rebuilt", rebuilt), ("loaded", loaded)):
        indexes = model.build_indexes(data["alpha"], data["beta_raw"])
        out = model.decompress(data["strings"], indexes, means=data["means"])
        torch.save(out, folder + "/" + name + ".pt")
    saved = torch.load(folder + "/model.pt")
    same = all(torch.equal(rebuilt.state_dict()[k], v) for k, v in saved.items())
    print("tables_identical", same)
    """
)


def test_decode_in_a_separate_process(ggm, tmp_path: Path) -> None:
    lat = random_latent((2, 8, 16, 16), seed=2)
    indexes = ggm.build_indexes(lat["alpha"], lat["beta_raw"])
    strings = ggm.compress(lat["y"], indexes, lat["means"])
    torch.save({**lat, "strings": strings}, tmp_path / "stream.pt")
    torch.save(ggm.state_dict(), tmp_path / "model.pt")
    result = subprocess.run(
        [sys.executable, "-c", DECODER_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "tables_identical True" in result.stdout
    expected = torch.round(lat["y"] - lat["means"]) + lat["means"]
    for name in ("rebuilt", "loaded"):
        assert torch.equal(torch.load(tmp_path / f"{name}.pt"), expected), name


def test_state_dict_round_trip_in_process(ggm) -> None:
    fresh = GeneralizedGaussianConditional("element")
    with pytest.raises(ValueError, match="update"):
        fresh.compress(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2, dtype=torch.int32))
    fresh.load_state_dict(ggm.state_dict())
    for key, value in ggm.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
    assert fresh.table_nbytes == ggm.table_nbytes < 4_000_000
    lat = random_latent((1, 4, 8, 8), seed=3)
    indexes = ggm.build_indexes(lat["alpha"], lat["beta_raw"])
    assert ggm.compress(lat["y"], indexes, lat["means"]) == fresh.compress(
        lat["y"], indexes, lat["means"]
    )


def test_bitstream_length_matches_model_rate(ggm) -> None:
    shape = (1, 32, 64, 64)  # 131072 symbols
    gen = torch.Generator().manual_seed(4)
    beta = torch.empty(shape, dtype=torch.float64).uniform_(0.5, 4.0, generator=gen)
    std = torch.exp(torch.empty(shape, dtype=torch.float64).uniform_(-1.5, 3.5, generator=gen))
    alpha = std / gg_std_factor(beta)
    means = torch.randn(shape, generator=gen, dtype=torch.float64)
    y = means + sample_gg(shape, alpha, beta, gen)
    raw = raw_from_beta(beta, 0.5)
    indexes = ggm.build_indexes(alpha, raw)
    strings = ggm.compress(y, indexes, means)
    bits = 8 * sum(len(s) for s in strings)
    alpha_q, beta_q = ggm.table_parameters(indexes)
    y_hat = torch.round(y - means)
    estimate = float(-torch.log2(gg_bin_mass(y_hat, alpha_q, beta_q)).sum())
    print(f"bitstream {bits} bits, model estimate {estimate:.0f} bits")
    assert abs(bits - estimate) / estimate < 0.01


def fit_shape(z: torch.Tensor) -> tuple[float, float]:
    """Maximum-likelihood (continuous) GG shape and scale of standardized samples ``z``."""
    best = (-math.inf, 2.0, 1.0)
    for beta in torch.linspace(0.5, 3.0, 101, dtype=torch.float64).tolist():
        alpha = float((beta * z.abs().pow(beta).mean()) ** (1.0 / beta))
        loglik = float(gg_log_density(z, alpha, beta).sum())
        best = max(best, (loglik, beta, alpha))
    return best[1], best[2]


def compare_with_gaussian(true_beta: float, gaussian: GaussianConditional, seed: int) -> tuple:
    """Bitstream bytes of a fitted-shape GGM and of the Gaussian on the same GG samples."""
    shape = (1, 32, 64, 64)
    gen = torch.Generator().manual_seed(seed)
    std = torch.exp(torch.empty(shape, dtype=torch.float64).uniform_(-0.5, 2.5, generator=gen))
    means = torch.randn(shape, generator=gen, dtype=torch.float64)
    unit_alpha = 1.0 / float(gg_std_factor(torch.tensor(true_beta, dtype=torch.float64)))
    z = sample_gg(shape, unit_alpha, true_beta, gen)  # unit variance
    y = (means + std * z).float()
    beta_hat, alpha_hat = fit_shape(z)
    ggm = GeneralizedGaussianConditional("model", beta_init=beta_hat)
    ggm.update()
    indexes = ggm.build_indexes((std * alpha_hat).float())
    ggm_bytes = sum(len(s) for s in ggm.compress(y, indexes, means.float()))
    sigma = (std * float(z.pow(2).mean().sqrt())).float()
    g_indexes = gaussian.build_indexes(sigma)
    gauss_bytes = sum(len(s) for s in gaussian.compress(y, g_indexes, means.float()))
    print(f"beta={true_beta}: fitted {beta_hat:.3f}, GGM {ggm_bytes} B, Gaussian {gauss_bytes} B")
    return ggm_bytes, gauss_bytes


def test_ggm_beats_gaussian_on_heavy_tails(gaussian) -> None:
    ggm_bytes, gauss_bytes = compare_with_gaussian(0.8, gaussian, seed=5)
    assert ggm_bytes < 0.97 * gauss_bytes  # measured: ~5 % smaller


def test_ggm_matches_gaussian_on_gaussian_samples(gaussian) -> None:
    ggm_bytes, gauss_bytes = compare_with_gaussian(2.0, gaussian, seed=6)
    assert abs(ggm_bytes - gauss_bytes) / gauss_bytes < 0.01


def test_rejects_values_the_coder_cannot_hold(ggm) -> None:
    alpha = torch.full((1, 1, 8, 8), 0.5)
    raw = torch.zeros(1, 1, 8, 8)
    indexes = ggm.build_indexes(alpha, raw)
    with pytest.raises(ValueError, match="rANS output buffer"):
        ggm.compress(torch.full((1, 1, 8, 8), 1e8), indexes)
    with pytest.raises(ValueError, match="finite"):
        ggm.compress(torch.full((1, 1, 8, 8), float("nan")), indexes)
