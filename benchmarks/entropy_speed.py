"""Speed of the generalized Gaussian entropy model (GGM) against compressai's Gaussian.

Measures, side by side in one run (repeats interleaved, alternating which model goes
first, medians reported), on the same latent tensor (default 1 x 192 x 32 x 48):

* table build time (``update``) and CDF table memory;
* entropy coding: ``build_indexes``, ``compress`` and ``decompress`` times;
* a training step (forward + backward of rate + distortion) of the entropy model alone,
  and of a whole mean-scale hyperprior (compressai's ``MeanScaleHyperprior``, N=128,
  M=192, 512 x 768 input) whose Gaussian conditional is swapped for the GGM.

The last line is ``coding_time_ratio <x>``: GGM / Gaussian time of compress + decompress.

Run: ``python benchmarks/entropy_speed.py [--repeats 7] [--network-repeats 2] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from compressai.entropy_models import GaussianConditional
from compressai.models import MeanScaleHyperprior
from compressai.models.google import get_scale_table
from torch import Tensor

from bench.entropy import (
    GeneralizedGaussianConditional,
    gg_std_factor,
    raw_from_beta,
    sample_gg,
)

LATENT_SHAPE = (1, 192, 32, 48)


def make_latent(shape: tuple[int, ...], seed: int = 0) -> dict[str, Tensor]:
    """A GG latent with per-element mean, standard deviation and shape (beta in 0.7..2.5)."""
    gen = torch.Generator().manual_seed(seed)
    std = torch.exp(torch.empty(shape).uniform_(-2.0, 2.5, generator=gen))
    beta = torch.empty(shape).uniform_(0.7, 2.5, generator=gen)
    means = torch.randn(shape, generator=gen)
    y = means + sample_gg(shape, std / gg_std_factor(beta), beta, gen, torch.float32)
    return {
        "y": y,
        "means": means,
        "sigma": std,
        "alpha": std / gg_std_factor(beta),
        "beta_raw": raw_from_beta(beta, 0.5),
    }


def timed(fn: Callable[[], object]) -> float:
    """Wall time of one call, in seconds."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleave(cases: dict[str, Callable[[], dict[str, float]]], repeats: int) -> dict:
    """Run each case ``repeats`` times, alternating the order; return medians per key."""
    names = list(cases)
    for name in names:  # warm-up
        cases[name]()
    samples: dict[str, dict[str, list[float]]] = {n: {} for n in names}
    for rep in range(repeats):
        for name in names if rep % 2 == 0 else names[::-1]:
            for key, value in cases[name]().items():
                samples[name].setdefault(key, []).append(value)
    return {n: {k: statistics.median(v) for k, v in d.items()} for n, d in samples.items()}


def coding_case(model: torch.nn.Module, scales: Tensor, lat: dict, **kw: Tensor) -> Callable:
    """One build_indexes + compress + decompress round, checked for exactness."""
    expected = torch.round(lat["y"] - lat["means"]) + lat["means"]

    def run() -> dict[str, float]:
        start = time.perf_counter()
        indexes = model.build_indexes(scales, **kw)
        t_index = time.perf_counter()
        strings = model.compress(lat["y"], indexes, lat["means"])
        t_comp = time.perf_counter()
        out = model.decompress(strings, indexes, means=lat["means"])
        t_dec = time.perf_counter()
        if not torch.equal(out, expected):
            raise AssertionError("decoded symbols differ")
        return {
            "index": t_index - start,
            "compress": t_comp - t_index,
            "decompress": t_dec - t_comp,
            "bytes": float(sum(len(s) for s in strings)),
        }

    return run


def entropy_step_case(model: torch.nn.Module, scales: Tensor, lat: dict, **kw: Tensor) -> Callable:
    """Forward + backward of rate + MSE through the entropy model alone."""

    def run() -> dict[str, float]:
        y = lat["y"].clone().requires_grad_()
        s = scales.clone().requires_grad_()
        mu = lat["means"].clone().requires_grad_()

        def step() -> None:
            y_hat, lik = model(y, s, mu, training=True, **kw)
            loss = -torch.log2(lik).sum() / lik.numel() + ((y_hat - y) ** 2).mean()
            loss.backward()

        return {"step": timed(step)}

    return run


def network_case(net: MeanScaleHyperprior, image: Tensor) -> Callable:
    """Forward + backward of a whole mean-scale hyperprior (rate + MSE)."""

    def run() -> dict[str, float]:
        def step() -> None:
            net.zero_grad(set_to_none=True)
            out = net(image)
            rate = sum(-torch.log2(lik).sum() for lik in out["likelihoods"].values())
            loss = rate / image.numel() + ((out["x_hat"] - image) ** 2).mean()
            loss.backward()

        return {"step": timed(step)}

    return run


def build_models() -> tuple[GeneralizedGaussianConditional, GaussianConditional, dict]:
    """GGM (per-element shape) and compressai Gaussian; returns their update() figures."""
    ggm = GeneralizedGaussianConditional("element")
    gauss = GaussianConditional(None)
    t_ggm = min(timed(lambda: ggm.update(force=True)) for _ in range(3))
    table = get_scale_table().tolist()
    t_gauss = min(timed(lambda: gauss.update_scale_table(table, force=True)) for _ in range(3))
    stats = {
        "ggm_build_s": t_ggm,
        "gauss_build_s": t_gauss,
        "ggm_tables": ggm.grid.num_tables,
        "ggm_table_bytes": ggm.table_nbytes,
        "gauss_table_bytes": sum(
            b.numel() * b.element_size()
            for b in (gauss._quantized_cdf, gauss._cdf_length, gauss._offset)
        ),
    }
    return ggm, gauss, stats


def network_pair(seed: int = 0) -> tuple[MeanScaleHyperprior, MeanScaleHyperprior]:
    """Two identical mean-scale hyperpriors, the second with a per-channel-shape GGM."""
    torch.manual_seed(seed)
    gauss_net = MeanScaleHyperprior(128, 192)
    ggm_net = MeanScaleHyperprior(128, 192)
    ggm_net.load_state_dict(gauss_net.state_dict(), strict=False)
    ggm_net.gaussian_conditional = GeneralizedGaussianConditional("channel", 192)
    return ggm_net, gauss_net


def main() -> None:
    """Run all measurements and print them (last line: ``coding_time_ratio <x>``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--network-repeats", type=int, default=2, help="0 skips the network")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads; 1 (default) keeps timings stable on a shared machine",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, latent {LATENT_SHAPE}")

    ggm, gauss, stats = build_models()
    print(
        f"table build: ggm {stats['ggm_build_s']:.3f} s ({stats['ggm_tables']} tables), "
        f"gaussian {stats['gauss_build_s']:.3f} s"
    )
    print(
        f"table memory: ggm {stats['ggm_table_bytes']} bytes, "
        f"gaussian {stats['gauss_table_bytes']} bytes"
    )

    lat = make_latent(LATENT_SHAPE)
    ggm_kw = {"beta_raw": lat["beta_raw"]}
    coding = interleave(
        {
            "ggm": coding_case(ggm, lat["alpha"], lat, **ggm_kw),
            "gaussian": coding_case(gauss, lat["sigma"], lat),
        },
        args.repeats,
    )
    for name, res in coding.items():
        print(
            f"coding {name}: build_indexes {res['index'] * 1e3:.1f} ms, "
            f"compress {res['compress'] * 1e3:.1f} ms, decompress {res['decompress'] * 1e3:.1f} "
            f"ms, {res['bytes']:.0f} bytes"
        )
    g, c = coding["ggm"], coding["gaussian"]
    ratio = (g["compress"] + g["decompress"]) / (c["compress"] + c["decompress"])
    ratio_all = (g["index"] + g["compress"] + g["decompress"]) / (
        c["index"] + c["compress"] + c["decompress"]
    )
    print(f"coding ratio incl. build_indexes {ratio_all:.3f}")

    ggm_model = GeneralizedGaussianConditional("model")
    steps = interleave(
        {
            "ggm_model_beta": entropy_step_case(ggm_model, lat["alpha"], lat),
            "ggm_element_beta": entropy_step_case(
                ggm, lat["alpha"], lat, beta_raw=lat["beta_raw"].clone().requires_grad_()
            ),
            "gaussian": entropy_step_case(gauss, lat["sigma"], lat),
        },
        args.repeats,
    )
    base = steps["gaussian"]["step"]
    for name in ("ggm_model_beta", "ggm_element_beta"):
        t = steps[name]["step"]
        print(
            f"entropy-model train step {name}: {t * 1e3:.1f} ms vs gaussian {base * 1e3:.1f} ms, "
            f"ratio {t / base:.2f}"
        )

    if args.network_repeats > 0:
        image = torch.rand(1, 3, 512, 768, generator=torch.Generator().manual_seed(1))
        ggm_net, gauss_net = network_pair()
        nets = interleave(
            {"ggm": network_case(ggm_net, image), "gaussian": network_case(gauss_net, image)},
            args.network_repeats,
        )
        t_g, t_c = nets["ggm"]["step"], nets["gaussian"]["step"]
        print(
            f"network train step (MeanScaleHyperprior 512x768, channel beta): ggm {t_g:.2f} s, "
            f"gaussian {t_c:.2f} s, training_step_ratio {t_g / t_c:.3f}"
        )

    print(f"coding_time_ratio {ratio:.3f}")


if __name__ == "__main__":
    main()
