"""Does the generalized Gaussian pay on the same latents? A GGM head on fixed transforms.

Release after release the ``ggm`` network ends a little *behind* its separately trained
Gaussian twin ``gaussian-roi`` (release 6: +1.4 % rate for the same ROI-PSNR), although inside
``ggm`` the predicted shape is worth 1.6–2.4 % of the latent rate (``bench analyze-latents``).
Two trainings differ in their transforms too, so that comparison cannot say what the entropy
model alone is worth. This experiment holds the transforms fixed:

* start from one released model (default ``gaussian-roi``); keep its analysis and synthesis
  transforms, gain vectors and latent condition **frozen**, so ``y`` and the decoder are the
  same for every variant;
* **gaussian head**: fine-tune its own hyper-analysis, hyper-synthesis, head and ``z`` model
  on the rate (the control: what the extra steps alone buy);
* **ggm head**: the same network with a GGM head, started exactly at the Gaussian (the head's
  scale outputs × √2, since a GG with β = 2 has α = √2·σ; the shape outputs' weights 0 and bias
  at β = 2), fine-tuned on the same batches with the same noise and schedule.

The straight-through rounding gives the mean no gradient from the distortion
(:func:`bench.entropy.ste_round`), and nothing else the fine-tuned parts produce reaches the
synthesis, so the loss of the trainable parts is the rate alone: both variants minimize
``bpp`` of ``y`` and ``z``. The log prints both training rates every ``--log-every`` steps and
their ratio; both variants are exported as released models (``OUT/gaussian-head.pt``,
``OUT/ggm-head.pt``) so that ``benchmarks/learned_rd.py`` compares them with real bitstreams
on val pictures, the only judgement that counts. Checkpoints every ``--checkpoint-minutes``
into ``OUT``; a rerun continues from there (with the same ``--steps``: the learning rate's
cosine decay is computed from it).

Run: ``python benchmarks/entropy_head_swap.py --out /tmp/swap [--steps 4000]``, then
``python benchmarks/learned_rd.py --model /tmp/swap/gaussian-head.pt --model
/tmp/swap/ggm-head.pt --limit 8``.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

from bench.entropy import raw_from_beta
from bench.learned.checkpoint import atomic_save, build_model, export_model, load
from bench.learned.data import MemorySource, make_batch
from bench.learned.network import RoiHyperprior
from bench.learned.recipe import RATE_MODES, Recipe
from bench.learned.train import _noise_seed, to_tensors

#: the parts fine-tuned: what gives the entropy parameters and codes ``z``. Not
#: ``lat_cond``: its features feed the synthesis too.
TRAINED = ("h_a", "h_s", "head", "entropy_bottleneck")


def ggm_from_gaussian(gaussian: RoiHyperprior, beta: float = 2.0) -> RoiHyperprior:
    """A GGM network with ``gaussian``'s weights whose likelihoods start as the Gaussian's
    (up to the two models' lower bounds on the scale)."""
    model = build_model(dict(gaussian.config(), entropy="ggm"))
    state = {k: v for k, v in gaussian.state_dict().items() if not k.startswith("conditional.")}
    m = gaussian.M
    weight, bias = state.pop("head.2.weight"), state.pop("head.2.bias")
    shape_bias = float(raw_from_beta(beta, model.conditional.gg_shape.beta_min))
    # a GG of shape 2 and scale alpha is a Gaussian of std alpha / sqrt(2)
    state["head.2.weight"] = torch.cat([weight[:m], weight[m:] * math.sqrt(beta),
                                        torch.zeros_like(weight[:m])])
    state["head.2.bias"] = torch.cat([bias[:m], bias[m:] * math.sqrt(beta),
                                      torch.full_like(bias[:m], shape_bias)])
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("conditional.") for k in missing):
        raise RuntimeError(f"state mismatch: missing {missing}, unexpected {unexpected}")
    return model


def trainable(model: RoiHyperprior) -> tuple[list, list]:
    """Freeze everything but :data:`TRAINED`; return (main, aux) parameter lists."""
    main, aux = [], []
    for name, p in model.named_parameters():
        p.requires_grad_(name.split(".")[0] in TRAINED)
        if p.requires_grad:
            (aux if name.endswith(".quantiles") else main).append(p)
    return main, aux


def rate(model: RoiHyperprior, y: torch.Tensor, q_lat: torch.Tensor, gain, pixels: int,
         rounded: bool = False) -> torch.Tensor:
    """Training rate (bits per pixel of ``y`` and ``z``) of the un-gained latent ``y``
    through ``model``'s hyperprior: ``y``'s likelihoods with additive uniform noise, as the
    trainer computes them, or (``rounded``) of ``round(y - mu) + mu``, as it is coded.

    ``rounded`` takes the entropy model's evaluation path, where the mean gets no gradient
    from the rate (only the scale and shape are fitted to the coded symbols); the trainer's
    ``Recipe.rate = "rounded"`` (:meth:`RoiHyperprior.forward`) also moves the mean towards
    the coded value."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = model.h_a(y)
    with torch.autocast("cpu", enabled=False):
        z_hat, z_lik = model.entropy_bottleneck(z.float())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, params = model.entropy_parameters(z_hat, q_lat, gain)
    with torch.autocast("cpu", enabled=False):
        extra = {"beta_raw": params[2]} if model.entropy == "ggm" else {}
        _, y_lik = model.conditional(y * gain, params[1], means=params[0],
                                     training=not rounded, **extra)
        bits = -torch.log2(y_lik).sum() - torch.log2(z_lik).sum()
    return bits / pixels


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", default="bench/learned/weights/gaussian-roi.pt",
                    help="released model whose transforms are kept (default gaussian-roi)")
    ap.add_argument("--out", required=True, help="folder for checkpoints and the two models")
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--lr", type=float, default=1e-4,
                    help="peak learning rate (cosine decay to a tenth)")
    ap.add_argument("--rate", choices=RATE_MODES, default="noise",
                    help="y's rate in training: additive uniform noise (the trainer's) or "
                         "the rounded latent's (what is coded)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--checkpoint-minutes", type=float, default=5.0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    blob = load(args.source)
    card = blob.get("card", {})
    recipe = Recipe(**card["recipe"])  # its batches, crops and seed
    base = build_model(blob["config"])
    base.load_state_dict(blob["state_dict"])
    if base.entropy != "gaussian":
        raise SystemExit(f"{args.source}: start from a Gaussian model, not {base.entropy!r}")
    models = {"gaussian-head": base, "ggm-head": ggm_from_gaussian(base)}
    opts = {}
    for name, model in models.items():
        model.train()
        main_p, aux_p = trainable(model)
        opts[name] = (torch.optim.Adam(main_p, lr=args.lr), torch.optim.Adam(aux_p, lr=1e-3))
    step = 0
    state_path = out / "state.pt"
    if state_path.is_file():
        state = torch.load(state_path, weights_only=True)
        step = state["step"]
        for name, model in models.items():
            model.load_state_dict(state[name]["model"])
            opts[name][0].load_state_dict(state[name]["opt"])
            opts[name][1].load_state_dict(state[name]["aux"])
        print(f"resumed at step {step}", flush=True)

    def save():
        atomic_save({"step": step, **{name: {"model": m.state_dict(),
                                             "opt": opts[name][0].state_dict(),
                                             "aux": opts[name][1].state_dict()}
                                      for name, m in models.items()}}, state_path)

    source = MemorySource()
    print(f"{len(source)} training images; {args.steps} steps of {recipe.batch_size}×"
          f"{recipe.crop}² (batches of recipe {recipe.name}, seed {recipe.seed}); "
          f"transforms of {args.source} frozen", flush=True)
    sums = {name: 0.0 for name in models}
    count, last_save, t0 = 0, time.time(), time.time()
    while step < args.steps:
        images, qmaps, _ = make_batch(source, step, recipe.seed, recipe.batch_size,
                                      recipe.crop, recipe.qmap_weights)
        x, q = to_tensors(images, qmaps)
        q_lat = base.latent_qmap(q)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            y = base.g_a(x, q).float()  # frozen: the same for both variants
            gain = base.gain_maps(q_lat)[0]
        lr = args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / args.steps)))
        for name, model in models.items():
            torch.manual_seed(_noise_seed(recipe.seed, step))  # the same noise for both
            opt, aux_opt = opts[name]
            for group in opt.param_groups:
                group["lr"] = lr
            bpp = rate(model, y, q_lat, gain, x.shape[0] * x.shape[2] * x.shape[3],
                       rounded=args.rate == "rounded")
            opt.zero_grad(set_to_none=True)
            bpp.backward()
            torch.nn.utils.clip_grad_norm_(opt.param_groups[0]["params"], 1.0)
            opt.step()
            aux = model.aux_loss()
            aux_opt.zero_grad(set_to_none=True)
            aux.backward()
            aux_opt.step()
            sums[name] += bpp.item()
        count += 1
        step += 1
        if step % args.log_every == 0 or step == args.steps:
            g, m = sums["gaussian-head"] / count, sums["ggm-head"] / count
            print(f"step {step}: bpp gaussian-head {g:.4f} ggm-head {m:.4f} ratio "
                  f"{m / g:.4f} ({(time.time() - t0) / count:.2f} s/step)", flush=True)
            sums = {name: 0.0 for name in models}
            count, t0 = 0, time.time()
        if time.time() - last_save > 60 * args.checkpoint_minutes:
            save()
            last_save = time.time()
    save()
    for name, model in models.items():
        note = (f"{args.source} with frozen transforms; {name.split('-')[0]} head fine-tuned "
                f"{args.steps} steps on the rate (benchmarks/entropy_head_swap.py)")
        export_model(model, out / f"{name}.pt", dict(card, note=note))
        print(f"wrote {out / f'{name}.pt'}", flush=True)


if __name__ == "__main__":
    main()
