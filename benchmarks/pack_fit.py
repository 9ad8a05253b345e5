"""Does a checkpoint fit its training pack better than the training images it was cut from?

A GPU lease trains on a *training pack* (``bench train --make-pack``): a few hundred crops
that fit the device machine's 64 MiB working tree beside the repository, against the ~900
whole images the CPU campaign crops from. Thousands of GPU steps on so few crops can fit the
pack and lose ground elsewhere. This script measures that, side by side on the same batches:
the training loss (bpp + λ-weighted MSE, the recipe's λ range and quality-map mix, in eval
mode) of each model on crops drawn from the pack and on fresh crops drawn from the training
images (another seed than training's), and each model's change against the first.

A model that gains on the pack and loses on the fresh crops has fitted the pack; judge it on
val2017 with ``benchmarks/learned_rd.py`` before continuing from it. Run:
``python benchmarks/pack_fit.py --pack gpu/pack.npz --model before.pt --model after.pt``
(models from ``bench train --recipe … --export-only --export FILE --rd-images 0``).
"""

from __future__ import annotations

import argparse

import torch

from bench.learned.checkpoint import load_model
from bench.learned.data import MemorySource, PackSource, make_batch
from bench.learned.recipe import get_recipe
from bench.learned.train import mean_rd_terms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True,
                    help="exported model file (repeat; the first is the reference)")
    ap.add_argument("--pack", required=True, help="training pack (.npz)")
    ap.add_argument("--batches", type=int, default=24, help="batches per source (default 24)")
    ap.add_argument("--seed", type=int, default=777,
                    help="batch seed, not the recipe's (default 777)")
    ap.add_argument("--data-root", default=None, help="COCO root with train2017 (default: shared)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    loaded = [load_model(path) for path in args.model]
    models = [model for model, _ in loaded]
    card_recipe = loaded[0][1].get("recipe") or {}
    recipe = {**get_recipe(card_recipe.get("name", "release-3")).__dict__, **card_recipe}
    names = [f"{path.split('/')[-1]} (step {card.get('budget', {}).get('steps', '?')})"
             for path, (_, card) in zip(args.model, loaded, strict=True)]
    sources = {"pack": PackSource(args.pack), "fresh": MemorySource(args.data_root)}
    print(f"{args.batches} batches of {recipe['batch_size']}×{recipe['crop']}² per source, "
          f"seed {args.seed}; pack: {sources['pack'].describe()}; fresh: "
          f"{sources['fresh'].describe()}")
    results = {}
    for name, src in sources.items():
        batches = [make_batch(src, step, args.seed, recipe["batch_size"], recipe["crop"],
                              recipe["qmap_weights"])[:2] for step in range(args.batches)]
        results[name] = [mean_rd_terms(model, batches, recipe["lambda_min"],
                                       recipe["lambda_max"]) for model in models]
    print(f"{'model':40s} {'source':6s} {'loss':>8s} {'bpp':>8s} {'dist':>8s} {'vs first':>9s}")
    for name, rows in results.items():
        for label, row in zip(names, rows, strict=True):
            change = 100 * (row["loss"] / rows[0]["loss"] - 1)
            print(f"{label:40s} {name:6s} {row['loss']:8.4f} {row['bpp']:8.4f} "
                  f"{row['dist']:8.4f} {change:+8.1f}%")
    last = names[-1]
    pack_change = 100 * (results["pack"][-1]["loss"] / results["pack"][0]["loss"] - 1)
    fresh_change = 100 * (results["fresh"][-1]["loss"] / results["fresh"][0]["loss"] - 1)
    print(f"{last} against the first: loss {pack_change:+.1f} % on the pack, "
          f"{fresh_change:+.1f} % on fresh crops (gap {pack_change - fresh_change:+.1f} points)")


if __name__ == "__main__":
    main()
