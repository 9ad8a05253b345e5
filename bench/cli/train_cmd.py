"""``bench train``: train the learned ROI codecs (``ggm``, ``gaussian-roi``) on COCO train2017
plus codec-train (never val2017).

A named recipe (--recipe) fixes what is learned: planned steps, crops, batch, the learning
rate schedule (from the planned total), λ range, quality-map mix, network and precision.
With a recipe the run lives in a state folder outside the work tree
($BENCH_TRAIN_DIR/RECIPE/ENTROPY, default ~/.cache/bench/train/RECIPE/ENTROPY) and the same
command continues it from its last checkpoint; --steps then only says where this invocation
stops, never moves the schedule. With no checkpoint there (a new machine), a recipe that
warm-starts begins from the codec's committed campaign snapshot (bench/learned/campaign/,
written by --snapshot) or its released weights, whichever is further along the recipe.
Without --recipe, a custom run is built from the flags (--steps is then its planned total,
stored in the checkpoint). One trainer per state folder: while one trains there (it holds
the folder's lock, OUT/trainer.lock), a second stops at once with an error naming it;
--status, --snapshot and --export-only only read and may run beside it.

Loss = bpp + 255²·mean(λ(q)·(x − x̂)²). Checkpoints go to OUT/last.pt (every
--checkpoint-every minutes and at the end), a per-step log to OUT/train.log.jsonl. --export
writes the released model and its card into the package
(bench/learned/weights/<codec>.pt/.json), with RD numbers measured on Kodak and val2017.

Examples:
  bench train --recipe release-8-ctx --entropy both --threads 2 --compile  # the CPU campaign
  bench train --recipe release-8-ctx --entropy ggm --threads 1 --compile  # one codec alone
  bench train --recipe release-8-ctx --entropy ggm --threads 1 --compile --fp32  # CPU w/o bf16
  bench train --recipe release-8-ctx --entropy ggm --steps 20000     # stop at step 20000
  bench train --recipe release-7 --entropy ggm --export-only         # release 7 again
  bench train --recipe release-8-ctx --status                  # where the campaign stands
  bench train --recipe release-8-ctx --entropy both --snapshot # carry it over to a new machine
  bench train --recipe release-8-ctx --entropy ggm --out /tmp/judge --warm-start snap/ggm.pt \\
      --export-only --export judge.pt --rd-images 0    # a snapshot as a model to measure
  bench train --make-pack pack.npz --pack-mib 30      # crops for a GPU machine
  bench train --recipe release-8-ctx --entropy both --pack pack.npz --device cuda --time-budget 8 \\
      --out gpu-state                     # both codecs, equal steps, on a GPU machine
  bash bench/learned/campaign/gpu.sh release-8-ctx 8.5 OUT   # the same, side by side, + snapshots
  bench train --entropy ggm --steps 2000 --crop 128 --out runs/quick   # a custom run
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import ExitStack
from pathlib import Path

#: the names of ``bench.learned.recipe.RECIPES``, for ``--help``
RECIPE_NAMES = ("release-1, release-2, release-3, release-4, release-5, release-6, release-7, "
                "release-8, release-8-tail, release-8-ctx")
#: the recipes among them that train under bfloat16 autocast, for ``--fp32``'s help
AUTOCAST_RECIPE_NAMES = ("release-2, release-3, release-4, release-5, release-6, release-7, "
                         "release-8, release-8-tail, release-8-ctx")


def state_dir(recipe: str, entropy: str) -> Path:
    """Where a recipe's run keeps its checkpoints: outside the work tree, per user."""
    root = os.environ.get("BENCH_TRAIN_DIR")
    base = Path(root) if root else Path.home() / ".cache" / "bench" / "train"
    return base / recipe / entropy


def register(sub) -> None:
    p = sub.add_parser("train", help="train the learned ROI codecs (ggm, gaussian-roi)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # named by hand: importing bench.learned.recipe would load numpy for every --help
    # (tests/test_learned_train.py checks that this names every recipe)
    p.add_argument("--recipe", default=None,
                   help=f"named training recipe ({RECIPE_NAMES}); default: a custom run "
                        "from the flags below")
    p.add_argument("--entropy", choices=("ggm", "gaussian", "both"), default=None,
                   help="latent entropy model: ggm (codec ggm, the default), gaussian (codec "
                        "gaussian-roi), or both in one process, alternating chunks of steps so "
                        "that their budgets stay equal (the CPU campaign's way, with --threads "
                        "2, and a GPU's); with --status, both unless given")
    p.add_argument("--chunk", type=int, default=100,
                   help="with --entropy both: steps per turn (default 100)")
    p.add_argument("--steps", type=int, default=None,
                   help="stop this invocation at this step; the learning-rate schedule follows "
                        "the recipe's planned total (a new custom run: its planned total, "
                        "default 100000)")
    p.add_argument("--batch-size", type=int, default=8, help="custom run: crops per step (8)")
    p.add_argument("--crop", type=int, default=256,
                   help="custom run: crop size, multiple of 16 (default 256)")
    p.add_argument("--lr", type=float, default=1e-4, help="custom run: Adam lr (default 1e-4)")
    p.add_argument("--seed", type=int, default=0,
                   help="custom run: seed; with --make-pack: which crops (default 0; a new "
                        "seed gives a new sample of the training images)")
    p.add_argument("--channels", default="96,128,32", metavar="N,M,C",
                   help="custom run: transform, latent and condition channels (96,128,32)")
    p.add_argument("--rate", choices=("noise", "rounded"), default="noise",
                   help="custom run: the latent's rate in training: noise (y + uniform noise, "
                        "the default and every release's) or rounded (the coded latent, "
                        "straight-through; as a fine-tune of release 6 it lost 1.4-3.3 %% of "
                        "rate, benchmarks/rate_proxy.py)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the training step (faster steps after a compilation "
                        "of a minute or two; see benchmarks/train_speed.py)")
    p.add_argument("--fp32", action="store_true",
                   help="compute in float32 where the recipe trains under bfloat16 autocast "
                        f"({AUTOCAST_RECIPE_NAMES}): for a CPU without native bfloat16 (no "
                        "avx512_bf16 or amx_bf16 flag), where autocast is emulated and about "
                        "7x slower (measured on an AMD EPYC Zen 3); with AMX float32 is the "
                        "slow choice (about 3x on an Intel Xeon), with avx512_bf16 alone no "
                        "faster (an AMD EPYC Zen 4); an "
                        "equivalent model, not a bit-identical one; each session records its "
                        "precision")
    p.add_argument("--out", default=None,
                   help="checkpoint/log folder (default: the recipe's state folder, or "
                        "runs/train-ENTROPY for a custom run)")
    p.add_argument("--resume", nargs="?", const=True, default=None, metavar="CKPT",
                   help="custom run: continue from OUT/last.pt (or CKPT) if it exists "
                        "(a recipe run always continues)")
    p.add_argument("--warm-start", default=None, metavar="MODEL",
                   help="released model or campaign snapshot a warm-starting recipe begins "
                        "from when its state folder is empty (default: the codec's campaign "
                        "snapshot or released weights, whichever is further along)")
    p.add_argument("--time-budget", type=float, default=None, metavar="MINUTES",
                   help="stop cleanly after this many minutes, with a checkpoint")
    p.add_argument("--checkpoint-every", type=float, default=5.0, metavar="MINUTES",
                   help="checkpoint interval (default 5)")
    p.add_argument("--pack", default=None, help="train from a training pack instead of images")
    p.add_argument("--make-pack", default=None, metavar="FILE",
                   help="write a training pack of pre-cut crops and exit")
    p.add_argument("--pack-mib", type=float, default=60.0, help="pack size limit (default 60)")
    p.add_argument("--pack-crop", type=int, default=256, help="pack crop size (default 256)")
    p.add_argument("--holdout", type=int, default=0, metavar="N",
                   help="with --pack: never train on the pack's last N crops, and with "
                        "--eval-every compare the loss on them with the loss on N crops it "
                        "trains on (default 0)")
    p.add_argument("--eval-every", type=int, default=0, metavar="STEPS",
                   help="with --holdout: evaluate every STEPS steps (logged, and kept in the "
                        "session's record in the checkpoint and snapshot; default 0: never)")
    p.add_argument("--patience", type=int, default=0, metavar="EVALS",
                   help="with --eval-every: stop when the held-out loss has not improved for "
                        "EVALS evaluations, a pack being fitted; the weights are then the last "
                        "step's, up to EVALS x STEPS past the best (default 0: never)")
    p.add_argument("--data-root", default=None,
                   help="COCO root with train2017 (default: shared), and val2017 for the "
                        "card's RD (default there: $BENCH_DATA_ROOT, else shared)")
    p.add_argument("--extra-dir", action="append", default=None, metavar="DIR",
                   help="extra unannotated image folder (default: shared codec-train)")
    p.add_argument("--export", nargs="?", const="", default=None, metavar="PATH",
                   help="after training, write the released model to PATH (with --entropy "
                        "both: a folder; default: the package's weights)")
    p.add_argument("--export-only", action="store_true",
                   help="export the checkpoint in OUT without training")
    p.add_argument("--snapshot", nargs="?", const="", default=None, metavar="PATH",
                   help="write a campaign snapshot of the checkpoint in OUT and exit, no "
                        "training: the weights (float16 where large, no optimizer state, "
                        "about 10 MiB for release-5) and the budget, to commit so that a new "
                        "machine goes on from this step (default PATH: "
                        "bench/learned/campaign/<codec>.pt; with --entropy both, a folder)")
    p.add_argument("--status", action="store_true",
                   help="say where the recipe's campaign stands and exit, changing nothing: "
                        "per codec the step of the planned total, the lr and its phase, "
                        "whether a trainer is running, the pace and time left, the sessions "
                        "per device, and the committed snapshot's step")
    p.add_argument("--rd-images", type=int, default=4,
                   help="images per set for the model card's RD numbers (0: none; default 4)")
    p.add_argument("--kodak", default=None, help="Kodak folder (default: shared)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=main)


def _fail(message: str) -> int:
    print(f"bench train: error: {message}", file=sys.stderr)
    return 2


def _status(recipe, args: argparse.Namespace) -> int:
    """``--status``: where each codec's run of the recipe stands (see
    :mod:`bench.learned.status`); reads the state folders, changes nothing."""
    from bench.learned.status import describe, read_status

    if not args.recipe:
        return _fail("--status reads a recipe's state folders: pass --recipe NAME")
    kinds = ("ggm", "gaussian") if args.entropy in (None, "both") else (args.entropy,)
    print(recipe.describe())
    for kind in kinds:
        folder = (Path(args.out) / kind if len(kinds) > 1 else Path(args.out)) if args.out \
            else state_dir(recipe.name, kind)
        print("\n".join(describe(recipe, read_status(recipe, kind, folder))))
    return 0


def main(args: argparse.Namespace) -> int:
    from bench.learned.data import ImageFolderSource, make_pack

    if args.make_pack:
        source = ImageFolderSource(args.data_root, args.extra_dir)
        print(f"cutting {args.pack_crop}² crops from {source.describe()} …", file=sys.stderr)
        info = make_pack(args.make_pack, source, crop=args.pack_crop, budget_mib=args.pack_mib,
                         seed=args.seed, progress=not args.no_progress)
        print(f"wrote {info['path']}: {info['crops']} crops, {info['mib']:.1f} MiB")
        return 0
    from bench.learned.recipe import Recipe, get_recipe

    if args.recipe:
        try:
            recipe = get_recipe(args.recipe)
        except ValueError as exc:
            return _fail(str(exc))
        resume = args.resume or True
    else:
        if args.crop % 16:
            return _fail("--crop must be a multiple of 16")
        try:
            n, m, c = (int(v) for v in args.channels.split(","))
        except ValueError:
            return _fail("--channels wants N,M,C")
        recipe = Recipe("custom", steps=args.steps or 100_000, batch_size=args.batch_size,
                        crop=args.crop, lr=args.lr, seed=args.seed, N=n, M=m, C=c,
                        rate=args.rate)
        resume = args.resume or args.export_only
    if args.status:
        return _status(recipe, args)
    entropy = args.entropy or "ggm"
    kinds = ("ggm", "gaussian") if entropy == "both" else (entropy,)
    if len(kinds) > 1 and args.warm_start:
        return _fail("--warm-start names one model; with --entropy both each codec warm-starts "
                     "from its own released weights (or train them one at a time)")
    if args.snapshot is not None and (args.export is not None or args.export_only):
        return _fail("--snapshot writes a campaign snapshot, --export a release: one at a time")
    if len(kinds) > 1 and args.snapshot and Path(args.snapshot).suffix:
        return _fail("with --entropy both, --snapshot takes a folder (it writes ggm.pt and "
                     "gaussian-roi.pt there) or nothing (the package's campaign folder)")
    if len(kinds) > 1 and args.export and Path(args.export).suffix:
        return _fail("with --entropy both, --export takes a folder (it writes ggm.pt and "
                     "gaussian-roi.pt there) or nothing (the package's weights)")

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        return _fail("CUDA is not available here; use --device cpu")
    outs = {kind: (str(Path(args.out) / kind) if len(kinds) > 1 else args.out) if args.out
            else str(state_dir(recipe.name, kind)) if args.recipe else f"runs/train-{kind}"
            for kind in kinds}
    trains = not (args.export_only or args.snapshot is not None)
    with ExitStack() as locks:
        if trains:  # before reading a checkpoint: a second trainer there would clobber it
            import shlex

            from bench.learned.lock import LOCK_NAME, FolderBusy, hold

            command = shlex.join(["bench", *getattr(args, "argv", [])])
            for out in outs.values():
                try:
                    locks.enter_context(hold(out, command))
                except FolderBusy as exc:
                    return _fail(str(exc))
                except OSError as exc:
                    return _fail(f"cannot lock {Path(out) / LOCK_NAME} (one trainer per state "
                                 f"folder): {exc}; train in a writable folder (--out)")
        return _build_and_train(args, recipe, kinds, outs, resume, trains)


def _build_and_train(args: argparse.Namespace, recipe, kinds: tuple[str, ...],
                     outs: dict[str, str], resume: bool, trains: bool) -> int:
    """Build each codec's trainer on its state folder ``outs[kind]``, then train, snapshot
    or export as the flags say (training under the folders' locks, taken by the caller)."""
    from bench.learned.data import shared_root
    from bench.learned.train import (
        TrainConfig,
        Trainer,
        cpu_has_amx_bf16,
        cpu_has_native_bf16,
        precision_warning,
    )

    trainers = {}
    for kind in kinds:
        out = outs[kind]
        cfg = TrainConfig(
            entropy=kind, out=out, device=args.device, threads=args.threads, pack=args.pack,
            coco_root=args.data_root, extra_dirs=args.extra_dir,
            stop_at=args.steps,  # the schedule stays the recipe's (or the stored one)
            time_budget_min=args.time_budget if len(kinds) == 1 else None,
            checkpoint_every_min=args.checkpoint_every,
            progress=not args.no_progress and len(kinds) == 1, compile=args.compile,
            warm_start_from=args.warm_start, fp32=args.fp32,
            holdout=args.holdout, eval_every=args.eval_every, patience=args.patience,
        )
        try:
            trainers[kind] = Trainer(recipe, cfg, resume=resume)
        except (FileNotFoundError, ValueError) as exc:
            return _fail(str(exc))
        trainer = trainers[kind]
        if args.export_only and trainer.step == 0:
            return _fail(f"no checkpoint in {cfg.out} to export")
        if args.snapshot is not None and not (Path(cfg.out) / "last.pt").is_file():
            return _fail(f"no checkpoint in {cfg.out} to snapshot (train first)")
        origin = trainer.describe_warm_start()
        precision = "; float32 (--fp32)" if trainer.recipe.autocast != trainer.autocast else ""
        held = f" ({args.holdout} held out)" if args.holdout else ""
        print(f"{kind} ({trainer.recipe.describe()}): {trainer.source.describe()}{held}; from step "
              f"{trainer.step} on {cfg.device}{precision}{'; ' + origin if origin else ''}; "
              f"state in {cfg.out}", file=sys.stderr)
    if trains and args.device == "cpu":
        warning = precision_warning(any(t.recipe.autocast for t in trainers.values()),
                                    args.fp32, cpu_has_native_bf16(), cpu_has_amx_bf16())
        if warning:
            print(f"bench train: warning: {warning}", file=sys.stderr)
    for kind, trainer in trainers.items():
        seen = trainer.steps_on_this_data() if trains and args.pack else 0
        if seen:
            print(f"bench train: warning: {kind} already took {seen} steps on this pack "
                  f"({trainer.source.describe()}); a pack of a few hundred crops seen again is "
                  "fitted rather than learned from (benchmarks/pack_fit.py): make a new one "
                  "with --make-pack FILE --seed N", file=sys.stderr)
    if args.snapshot is not None:
        from bench.learned import CODEC_NAMES

        for kind, trainer in trainers.items():
            card = trainer.snapshot(_codec_path(args.snapshot, CODEC_NAMES[kind], len(kinds) > 1))
            print(f"snapshot of {card['codec']} at step {trainer.step}: "
                  f"{card['checkpoint_bytes'] / 2**20:.1f} MiB")
        return 0
    if not args.export_only:
        if len(trainers) == 1:
            trainer.run()
        else:
            run_together(list(trainers.values()), args.time_budget, args.chunk)
        for kind, trainer in trainers.items():
            if trainer.history:
                last = trainer.history[-1]
                print(f"{kind} step {last['step']}: loss {last['loss']:.4f} bpp "
                      f"{last['bpp']:.4f} PSNR {last['psnr']:.2f} dB; checkpoint "
                      f"{trainer.out / 'last.pt'}")
    if args.export is not None or args.export_only:
        from bench.learned import CODEC_NAMES

        for kind, trainer in trainers.items():
            rd = _rd(trainer, args, shared_root()) if args.rd_images > 0 else None
            card = trainer.export(_codec_path(args.export, CODEC_NAMES[kind], len(kinds) > 1), rd)
            print(f"exported {card['codec']}: {card['checkpoint_bytes'] / 2**20:.1f} MiB")
    return 0


def _codec_path(arg: str | None, codec: str, several: bool) -> Path | None:
    """Where --export/--snapshot ARG writes ``codec``: ARG, or ARG/<codec>.pt when several
    codecs are written; None (the package's own folder) for the bare flag."""
    if not arg:
        return None
    return Path(arg) / f"{codec}.pt" if several else Path(arg)


def run_together(trainers: list, time_budget_min: float | None, chunk: int) -> None:
    """Train several models in turns of ``chunk`` steps, so that they stop at the same step.

    The one behind catches up first; after the first turn, a turn starts only if the time
    budget leaves room for it (judged by the last turn's duration), so the budget holds to
    within one turn. A stop signal (SIGTERM, SIGINT: a session's end) ends the whole run:
    during a turn the codec in its turn stops after its current step, between turns none
    starts another, and every codec keeps its checkpoint and records the signal. A codec that
    stops on a fault (a non-finite loss, non-finite gradients step after step) stops the
    others with it, each recording why; one whose held-out loss stalls only leaves the turns.
    """
    from bench.learned.train import catch_stop_signals, restore_signals

    between: list[int] = []  # a signal while no codec is in its turn
    handlers = catch_stop_signals(between)
    try:
        _turns(trainers, time_budget_min, chunk, between)
    finally:
        restore_signals(handlers)


def _stop_all(trainers: list, reason: str, but=None) -> None:
    """Record ``reason`` as the end of every trainer's session (``but`` has done so itself)."""
    for trainer in trainers:
        if trainer is not but:
            trainer.mark_stopped(reason)
            print(f"{trainer.cfg.entropy}: stopped at step {trainer.step}: {reason}; "
                  f"checkpoint {trainer.out / 'last.pt'}", file=sys.stderr)


def _turns(trainers: list, time_budget_min: float | None, chunk: int,
           between: list[int]) -> None:
    """:func:`run_together`'s loop; ``between`` holds a signal caught outside the turns."""
    import time

    deadline = None if time_budget_min is None else time.monotonic() + 60 * time_budget_min
    target = min(t.end_step for t in trainers)
    last_turn = 0.0
    while True:
        low = min(t.step for t in trainers)
        if low >= target:
            break
        if deadline is not None and last_turn and time.monotonic() + last_turn > deadline:
            print(f"stopped at step {low}: time budget", file=sys.stderr)
            _stop_all(trainers, "time budget")
            break
        t0 = time.monotonic()
        goal = min(target, low + chunk)
        for trainer in trainers:
            if between:
                _stop_all(trainers, f"signal {between[0]}")
                return
            if trainer.step < goal:
                trainer.run(stop_at_step=goal)
                if trainer.stop_signal is not None:
                    _stop_all(trainers, f"signal {trainer.stop_signal}", but=trainer)
                    return
                if trainer.last_stop not in ("steps", None) and not trainer.stalled:
                    # a fault (non-finite loss or gradients): the others stop with it, so
                    # that the budgets stay equal while someone looks into it
                    _stop_all(trainers, f"{trainer.cfg.entropy} stopped on "
                              f"{trainer.last_stop} at step {trainer.step}", but=trainer)
                    return
        for t in trainers:  # one fitting its pack gets no more turns
            if t.stalled:
                print(f"{t.cfg.entropy}: stopped at step {t.step} (held-out loss)",
                      file=sys.stderr)
        trainers = [t for t in trainers if not t.stalled]
        if not trainers:
            return
        last_turn = time.monotonic() - t0
        print(f"step {goal}: " + ", ".join(
            f"{t.cfg.entropy} loss {t.history[-1]['loss']:.3f}" for t in trainers
            if t.history), file=sys.stderr, flush=True)


def _rd(trainer, args, shared) -> dict:
    from pathlib import Path

    import torch

    from bench.learned.rd import coco_images, kodak_images, rd_points

    model = trainer.release_model()
    model.eval().update(force=True)
    model.store_transforms(torch.channels_last)  # as load_model codes: the card's RD points
    out = {}
    kodak = Path(args.kodak) if args.kodak else shared / "kodak"
    if kodak.is_dir():
        out["kodak_uniform"] = rd_points(model, kodak_images(kodak, args.rd_images), "none")
    try:
        val = coco_images(args.data_root or None, "val2017", args.rd_images)
        out["coco_val2017_roi"] = rd_points(model, val, "gt")
    except Exception as exc:  # no val2017 here: the card says so
        out["coco_val2017_roi"] = f"not measured: {exc}"
    return out
