"""Fine-tune a released learned codec with either training rate, for a side-by-side RD test.

The trainer's rate of ``y`` has been the likelihood of ``y + U(-1/2, 1/2)`` (Ballé et al.,
ICLR 2017). On release 6's ``gaussian-roi`` that noisy rate is about 25 % above the rate of the
rounded latents the bitstream codes, and a GGM head fitted to it saves 5 % of it but nothing in
the bitstream (``benchmarks/entropy_head_swap.py``): the network is trained against a rate it
never pays. ``Recipe.rate = "rounded"`` prices the coded ``round(y - mu) + mu`` instead, with
a straight-through gradient (:meth:`bench.learned.network.RoiHyperprior.forward`).

One arm per call, so the two arms run side by side on two cores: the released model's own
recipe (its batches, crops, λ range, autocast, moving average) renamed ``rate-ARM``, warm-started
from the release, ``--steps`` steps at ``--lr`` with a cosine decay to a tenth, ``y``'s rate
``ARM``; checkpoints (resumable: run the same command again) in ``OUT/ARM``, the fine-tuned
model exported to ``OUT/ARM.pt``. Then compare with real bitstreams on val pictures:
``python benchmarks/learned_rd.py --model OUT/noise.pt --model OUT/rounded.pt --limit 8``.

Run: ``python benchmarks/rate_proxy.py --arm noise --out /tmp/rp`` and the same with
``--arm rounded`` (``--source bench/learned/weights/ggm.pt`` for the GGM codec).

``--scale-bound S`` (Gaussian only; arm ``ARM-boundS``): the Gaussian's lower bound on σ
(compressai's 0.11) set to ``S`` for training and coding. Most of the noisy rate's excess over
the coded rate is the price of latents that sit on their mean at the smallest σ
(``bench analyze-latents``); a lower bound shrinks that price while keeping the noisy rate's
gradients. The coding tables' smallest σ stays 0.11 (a smaller predicted σ codes with it).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from bench.learned.checkpoint import load
from bench.learned.recipe import RATE_MODES, Recipe
from bench.learned.train import TrainConfig, Trainer


def arm_recipe(card_recipe: dict, arm: str, steps: int, lr: float) -> Recipe:
    """The release's recipe as a fine-tune of ``steps`` with ``y``'s rate ``arm``."""
    return dataclasses.replace(Recipe(**card_recipe), name=f"rate-{arm}", steps=steps, lr=lr,
                               warmup=0, decay="cosine", decay_start=0.0, warm_start=True,
                               rate=arm)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arm", choices=RATE_MODES, required=True)
    ap.add_argument("--source", default="bench/learned/weights/gaussian-roi.pt",
                    help="released model to fine-tune (default gaussian-roi)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--compile", action="store_true", help="torch.compile the forward pass")
    ap.add_argument("--scale-bound", type=float, default=None,
                    help="Gaussian only: lower bound on sigma in training and coding")
    args = ap.parse_args(argv)
    blob = load(args.source)
    name = args.arm if args.scale_bound is None else f"{args.arm}-bound{args.scale_bound:g}"
    if args.scale_bound is not None and blob["config"]["entropy"] != "gaussian":
        raise SystemExit("--scale-bound is for a Gaussian model")
    recipe = arm_recipe(blob["card"]["recipe"], args.arm, args.steps, args.lr)
    out = Path(args.out)
    config = TrainConfig(entropy=blob["config"]["entropy"], out=str(out / name),
                         threads=args.threads, warm_start_from=args.source,
                         checkpoint_every_min=5.0, log_every=100, progress=False,
                         compile=args.compile)
    trainer = Trainer(recipe, config, resume=True)
    if args.scale_bound is not None:  # a buffer: checkpoints and the export keep it
        trainer.model.conditional.lower_bound_scale.bound.fill_(args.scale_bound)
    print(f"{recipe.describe()}; {trainer.describe_warm_start()}; "
          f"from step {trainer.step}", flush=True)
    trainer.run()
    if trainer.step >= recipe.steps:
        card = trainer.export(out / f"{name}.pt")
        print(f"wrote {out / f'{name}.pt'} ({card['checkpoint_bytes']} bytes)", flush=True)


if __name__ == "__main__":
    main()
