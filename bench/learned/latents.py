"""Which density fits a codec's actual latents? (``bench analyze-latents``)

For each image the codec's model computes ``y``, the hyper-decoder's mean ``mu`` and scale
``s`` (``alpha`` for the GGM, ``sigma`` for the Gaussian model, after the entropy model's
lower bound); the coded symbols are ``k = round(y - mu)``. Each family (Gaussian, Laplacian,
logistic, generalized Gaussian) is fitted by maximum likelihood of the *quantized* symbols
``P(k) = F((k + 1/2) / (c s)) - F((k - 1/2) / (c s))`` with one global scale factor ``c``
(and, for the GGM, one global shape ``beta``), and the bits per element under each fit are
reported next to the codec's own model (its per-element predicted parameters). The histogram
plot shows the standardized residuals ``(y - mu) / s`` with the fitted densities.

For the GGM codec two more numbers isolate what the predicted shape buys inside the same
network: the bits of the same symbols with the same ``(mu, alpha)`` but ``beta = 2`` (a
Gaussian), and under the Gaussian with the same standard deviation as each predicted GG; and
the quantiles of the predicted ``beta``, and how the codec's own bits split along it (the
share coded at the shape's floor ``beta_min`` says whether the floor binds where the rate is
spent).

For both codecs, the trainer's rate against the coded one: the bits of the same ``y`` under the
same parameters with additive uniform noise (the rate every release trained on,
:meth:`~bench.learned.network.RoiHyperprior.forward`) over the coded symbols' bits, overall and
on the elements of small predicted standard deviation (below :data:`SMALL_STD`), where they
differ most: such an element is nearly always coded as its mean for next to no bits, but the
noise spreads it over a whole bin, which a narrow density prices at a fraction of a bit to a
bit. On release 6 (training batches) that part made the noisy rate 12–20 % larger than the
coded one, and a GGM head fitted to the noisy rate saved 5 % of it, none of it coded
(``benchmarks/entropy_head_swap.py``).

With an ROI, the latents of blocks inside the ROI and of the background are also fitted
separately (``fit_regions``), since the claim is that uneven bit allocation is what makes
them peaked and heavy-tailed.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import optimize, stats

FAMILIES = ("gaussian", "laplacian", "logistic", "ggm")
#: A latent channel "carries bits" above this many estimated bits per latent position on
#: average (as ``benchmarks/learned_ceiling.py`` counts them). A channel under it codes
#: nearly nothing: it has collapsed onto its predicted mean (e.g. channels added by a
#: widening, :mod:`bench.learned.widen`, that training never took up).
ACTIVE_CHANNEL_BITS = 0.05


#: Edges of the predicted-shape bands that :func:`beta_band_summary` splits the bits into.
BETA_BANDS = (0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
#: A shape within this of ``beta_min`` counts as at the floor.
FLOOR_MARGIN = 0.01
#: Predicted standard deviations below this count as small in :func:`proxy_summary`.
SMALL_STD = 0.5


def collect(model, images, point, mode: str = "gt", max_elements: int = 400_000,
            seed: int = 0) -> dict:
    """Residuals ``y - mu``, scales and the model's own bits for ``images`` (a list of
    (image, roi)) at grid ``point``."""
    from bench.entropy import gg_bin_mass_nograd, gg_std_factor
    from bench.learned.coding import model_inputs
    from bench.learned.layers import single_thread

    res, scl, region, betas = [], [], [], []
    own_bits, beta2_bits, std_bits, count = 0.0, 0.0, 0.0, 0
    band_bits = np.zeros(len(BETA_BANDS) + 1)
    floor_bits = 0.0
    channel_bits, positions = None, 0
    noise = torch.Generator().manual_seed(seed)
    proxy = dict.fromkeys(("noisy", "small_coded", "small_noisy", "small_elements"), 0.0)
    for image, roi in images:
        x, q, q_lat, lat_codes = model_inputs(image, roi, point, mode)
        with single_thread(), torch.inference_mode():
            model.eval()
            out = model(x, q, q_lat)
            params = out["params"]
            mu, raw_scale = params[0], params[1]
            if model.entropy == "ggm":
                beta = model.conditional.beta(raw_scale, params[2])
                scale = model.conditional.bounded_scales(raw_scale, beta)
            else:
                scale = model.conditional.lower_bound_scale(raw_scale)
            bits_y = -torch.log2(out["likelihoods"]["y"])
            own_bits += float(bits_y.sum())
            u = torch.rand(out["y"].shape, generator=noise, dtype=out["y"].dtype) - 0.5
            noisy_y = -torch.log2(model.y_likelihood(out["y"] + u, params))
            # each element's predicted standard deviation (a GG's from its scale and shape)
            std = (scale.double() * gg_std_factor(beta.double()) if model.entropy == "ggm"
                   else scale.double())
            small = std < SMALL_STD
            proxy["noisy"] += float(noisy_y.double().sum())
            proxy["small_coded"] += float(bits_y[small].double().sum())
            proxy["small_noisy"] += float(noisy_y[small].double().sum())
            proxy["small_elements"] += int(small.sum())
            per_channel = bits_y.sum(dim=(0, 2, 3)).double().numpy()
            channel_bits = per_channel if channel_bits is None else channel_bits + per_channel
            positions += bits_y.shape[0] * bits_y.shape[2] * bits_y.shape[3]
            if model.entropy == "ggm":
                k = torch.round(out["y"] - mu).double()
                a, b = scale.double(), beta.double().expand_as(k)
                two = torch.full_like(k, 2.0)
                sigma2 = std * math.sqrt(2.0)  # GG(beta=2) with the same std
                beta2_bits += _bits(gg_bin_mass_nograd(k, a, two))
                std_bits += _bits(gg_bin_mass_nograd(k, sigma2, two))
                betas.append(b.flatten().numpy())
                band = torch.bucketize(b, torch.tensor(BETA_BANDS, dtype=b.dtype), right=True)
                band_bits += torch.bincount(band.flatten(), weights=bits_y.double().flatten(),
                                            minlength=len(BETA_BANDS) + 1).numpy()
                at_floor = b < model.conditional.gg_shape.beta_min + FLOOR_MARGIN
                floor_bits += float(bits_y[at_floor].double().sum())
        res.append((out["y"] - mu).flatten().numpy().astype(np.float64))
        scl.append(scale.flatten().numpy().astype(np.float64))
        in_roi = lat_codes > lat_codes.min() if mode == "gt" and roi is not None and roi.any() \
            else np.zeros_like(lat_codes, bool)
        region.append(np.broadcast_to(in_roi, res[-1].reshape(-1, *in_roi.shape).shape).ravel())
        count += res[-1].size
    r, s, g = np.concatenate(res), np.concatenate(scl), np.concatenate(region)
    idx = (np.random.default_rng(seed).choice(r.size, max_elements, replace=False)
           if r.size > max_elements else slice(None))
    out = {"residual": r[idx], "scale": s[idx], "in_roi": g[idx], "own_bpe": own_bits / count,
           "elements": count, "entropy": model.entropy,
           "channel_bits": channel_bits / positions,
           "proxy": {"noisy_bpe": proxy["noisy"] / count,
                     "small_share": proxy["small_elements"] / count,
                     "small_coded_bpe": proxy["small_coded"] / max(proxy["small_elements"], 1),
                     "small_noisy_bpe": proxy["small_noisy"] / max(proxy["small_elements"], 1)}}
    if betas:
        out["own_beta2_bpe"] = beta2_bits / count
        out["own_same_std_gaussian_bpe"] = std_bits / count
        levels = (0.05, 0.25, 0.5, 0.75, 0.95)
        all_betas = np.concatenate(betas)
        values = np.quantile(all_betas, levels)
        out["beta_quantiles"] = {p: float(v) for p, v in zip(levels, values, strict=True)}
        total = max(float(band_bits.sum()), 1e-300)  # the own bits, summed in float64
        out["bits_by_beta"] = band_bits / total
        beta_min = float(model.conditional.gg_shape.beta_min)
        floor_share = np.count_nonzero(all_betas < beta_min + FLOOR_MARGIN) / all_betas.size
        out["beta_floor"] = {"beta_min": beta_min, "elements": floor_share,
                             "bits": floor_bits / total}
    return out


def beta_band_summary(collected: dict) -> str:
    """Where the GGM's own bits are coded along the predicted shape, and how many elements
    sit at the shape's floor with how many of the bits: whether the floor binds where the
    rate is spent (softplus leaves a shape at its floor no gradient to leave it)."""
    edges = ("", *(f"{e:g}" for e in BETA_BANDS), "")
    bands = []
    for i, share in enumerate(collected["bits_by_beta"]):
        low, high = edges[i], edges[i + 1]
        name = f"<{high}" if not low else f">={low}" if not high else f"{low}-{high}"
        bands.append(f"{name} {100 * share:.1f}%")
    floor = collected["beta_floor"]
    return (f"  own bits by predicted beta: {', '.join(bands)}; at the floor (beta < "
            f"{floor['beta_min'] + FLOOR_MARGIN:g}): {100 * floor['elements']:.1f}% of the "
            f"elements, {100 * floor['bits']:.1f}% of the bits")


def proxy_summary(collected: dict) -> str:
    """One line: the trainer's noisy rate of these latents against their coded rate, and the
    part of the difference on the elements of small predicted std (see the module doc)."""
    p, own = collected["proxy"], collected["own_bpe"]
    extra = 100 * (p["noisy_bpe"] / own - 1) if own > 0 else math.nan
    return (f"training's noisy rate of the same latents: {p['noisy_bpe']:.4f} bits/elem "
            f"({extra:+.1f} % against the coded {own:.4f}); predicted std < {SMALL_STD:g} on "
            f"{100 * p['small_share']:.1f}% of the elements: noisy {p['small_noisy_bpe']:.4f}, "
            f"coded {p['small_coded_bpe']:.4f} bits/elem")


def channel_summary(per_position: np.ndarray) -> str:
    """One line on how a model's latent channels share its bits: how many carry bits
    (:data:`ACTIVE_CHANNEL_BITS`), which do not (as index ranges), and the share of the
    bits in the busiest tenth of the channels."""
    active = per_position > ACTIVE_CHANNEL_BITS
    busiest = np.sort(per_position)[::-1][:max(1, len(per_position) // 10)]
    total = float(per_position.sum())
    share = float(busiest.sum()) / total if total > 0 else math.nan
    silent = ", ".join(f"{a}" if a == b else f"{a}–{b}" for a, b in _runs(~active)) or "none"
    return (f"latent channels carrying bits (> {ACTIVE_CHANNEL_BITS:g} bit per position): "
            f"{int(active.sum())} of {len(per_position)}; silent: {silent}; the busiest "
            f"{len(busiest)} carry {share:.0%} of the bits")


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) index of each run of True in ``flags``."""
    out, start = [], None
    for i, f in enumerate(flags):
        if f and start is None:
            start = i
        if not f and start is not None:
            out.append((start, i - 1))
            start = None
    if start is not None:
        out.append((start, len(flags) - 1))
    return out


def _bits(mass: torch.Tensor) -> float:
    """Total ``-log2`` of bin masses, floored at 1e-9 as the coder's likelihood bound."""
    return float(-torch.log2(mass.clamp_min(1e-9)).sum())


def _cdf(family: str, t: np.ndarray, beta: float = 2.0) -> np.ndarray:
    if family == "gaussian":
        return stats.norm.cdf(t)
    if family == "laplacian":
        return stats.laplace.cdf(t)
    if family == "logistic":
        return stats.logistic.cdf(t)
    return stats.gennorm.cdf(t, beta)


def _pdf(family: str, t: np.ndarray, beta: float = 2.0) -> np.ndarray:
    dist = {"gaussian": stats.norm, "laplacian": stats.laplace, "logistic": stats.logistic}
    return dist[family].pdf(t) if family in dist else stats.gennorm.pdf(t, beta)


def bits_per_element(family: str, k: np.ndarray, s: np.ndarray, c: float,
                     beta: float = 2.0) -> float:
    """Mean ``-log2 P(k)`` with the scale ``c * s`` (mass floored at 1e-9 as in coding)."""
    width = c * s
    upper = _cdf(family, (k + 0.5) / width, beta)
    lower = _cdf(family, (k - 0.5) / width, beta)
    return float(np.mean(-np.log2(np.maximum(upper - lower, 1e-9))))


def fit(collected: dict) -> dict:
    """Fit every family; returns ``{family: {"bpe", "c", "beta"?}}`` plus ``own``."""
    k = np.round(collected["residual"])
    s = collected["scale"]
    out: dict = {"own": {"bpe": collected["own_bpe"]}}
    for fam in FAMILIES[:3]:
        r = optimize.minimize_scalar(lambda lc, fam=fam: bits_per_element(
            fam, k, s, math.exp(lc)), bounds=(-4, 4), method="bounded",
            options={"xatol": 1e-4})
        out[fam] = {"bpe": float(r.fun), "c": math.exp(r.x)}

    def f(p):
        return bits_per_element("ggm", k, s, math.exp(p[0]), math.exp(p[1]))

    # The GG contains the Laplacian (beta = 1, same scale) and the Gaussian (beta = 2, scale
    # sqrt(2) sigma): start from both fits so the GG fit is never worse than either.
    starts = [(out["laplacian"]["c"], 1.0), (out["gaussian"]["c"] * math.sqrt(2), 2.0)]
    best = None
    for c0, b0 in starts:
        r = optimize.minimize(f, [math.log(c0), math.log(b0)], method="Nelder-Mead",
                              options={"xatol": 1e-4, "fatol": 1e-6, "maxiter": 300})
        if best is None or r.fun < best.fun:
            best = r
    out["ggm"] = {"bpe": float(best.fun), "c": math.exp(best.x[0]), "beta": math.exp(best.x[1])}
    return out


def fit_regions(collected: dict) -> dict:
    """:func:`fit` on the ROI latents and on the background latents separately (an ROI
    latent is one whose 16×16 block has the ROI's quality); empty when there is no split."""
    flags = collected.get("in_roi")
    if flags is None or not flags.any() or flags.all():
        return {}
    out = {}
    for name, sel in (("roi", flags), ("background", ~flags)):
        part = {"residual": collected["residual"][sel], "scale": collected["scale"][sel],
                "own_bpe": math.nan}
        out[name] = dict(fit(part), elements=int(sel.sum()))
    return out


def plot(collected: dict, fits: dict, path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = collected["residual"] / collected["scale"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    lim = float(np.quantile(np.abs(t), 0.995)) or 1.0
    ax.hist(t, bins=201, range=(-lim, lim), density=True, color="0.75", label="latents")
    grid = np.linspace(-lim, lim, 801)
    for fam in FAMILIES:
        c, beta = fits[fam]["c"], fits[fam].get("beta", 2.0)
        ax.plot(grid, _pdf(fam, grid / c, beta) / c,
                label=f"{fam} ({fits[fam]['bpe']:.4f} bits/elem)")
    ax.set_yscale("log")
    ax.set_xlabel("(y − μ) / scale")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
