"""``bench train``: train the learned ROI codecs (``ggm``, ``gaussian-roi``) on COCO train2017
plus codec-train (never val2017).

Random crops with random quality maps (uniform, per-instance COCO masks, linear gradients,
blobs); loss = bpp + 255²·mean(λ(q)·(x − x̂)²), λ from 0.001 to 0.1. Resumable (--resume),
deterministic for a seed, CPU or CUDA. Checkpoints go to OUT/last.pt, a per-step log to
OUT/train.log.jsonl. --export writes the released model and its card into the package
(bench/learned/weights/<codec>.pt/.json), with RD numbers measured on Kodak and val2017.

Examples:
  bench train --make-pack pack.npz                    # ≤ 60 MiB of crops for a GPU machine
  bench train --entropy ggm --pack pack.npz --device cuda --steps 20000 --out runs/ggm
  bench train --entropy ggm --out runs/ggm --resume --time-budget 30
  bench train --entropy ggm --out runs/ggm --resume --export-only
"""

from __future__ import annotations

import argparse
import sys


def register(sub) -> None:
    p = sub.add_parser("train", help="train the learned ROI codecs (ggm, gaussian-roi)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--entropy", choices=("ggm", "gaussian"), default="ggm",
                   help="latent entropy model: ggm (codec ggm) or gaussian (codec gaussian-roi)")
    p.add_argument("--steps", type=int, default=100_000, help="total steps (default 100000)")
    p.add_argument("--batch-size", type=int, default=8, help="crops per step (default 8)")
    p.add_argument("--crop", type=int, default=256, help="crop size, multiple of 16 (default 256)")
    p.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (default 1e-4)")
    p.add_argument("--seed", type=int, default=0, help="seed of data, noise and init (default 0)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    p.add_argument("--out", default=None, help="checkpoint/log folder (default runs/train-ENTROPY)")
    p.add_argument("--resume", nargs="?", const=True, default=None, metavar="CKPT",
                   help="continue from OUT/last.pt (or CKPT) if it exists")
    p.add_argument("--time-budget", type=float, default=None, metavar="MINUTES",
                   help="stop cleanly after this many minutes, with a checkpoint")
    p.add_argument("--checkpoint-every", type=float, default=10.0, metavar="MINUTES",
                   help="checkpoint interval (default 10)")
    p.add_argument("--pack", default=None, help="train from a training pack instead of images")
    p.add_argument("--make-pack", default=None, metavar="FILE",
                   help="write a training pack of pre-cut crops and exit")
    p.add_argument("--pack-mib", type=float, default=60.0, help="pack size limit (default 60)")
    p.add_argument("--pack-crop", type=int, default=256, help="pack crop size (default 256)")
    p.add_argument("--data-root", default=None, help="COCO root with train2017 (default: shared)")
    p.add_argument("--extra-dir", action="append", default=None, metavar="DIR",
                   help="extra unannotated image folder (default: shared codec-train)")
    p.add_argument("--channels", default="96,128,32", metavar="N,M,C",
                   help="transform, latent and condition channels (default 96,128,32)")
    p.add_argument("--export", nargs="?", const="", default=None, metavar="PATH",
                   help="after training, write the released model (default: package weights)")
    p.add_argument("--export-only", action="store_true",
                   help="export the checkpoint in OUT without training")
    p.add_argument("--rd-images", type=int, default=4,
                   help="images per set for the model card's RD numbers (0: none; default 4)")
    p.add_argument("--kodak", default=None, help="Kodak folder (default: shared)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bench.learned.data import ImageFolderSource, make_pack, shared_root

    if args.make_pack:
        source = ImageFolderSource(args.data_root, args.extra_dir)
        print(f"cutting {args.pack_crop}² crops from {source.describe()} …", file=sys.stderr)
        info = make_pack(args.make_pack, source, crop=args.pack_crop, budget_mib=args.pack_mib,
                         seed=args.seed, progress=not args.no_progress)
        print(f"wrote {info['path']}: {info['crops']} crops, {info['mib']:.1f} MiB")
        return 0
    if args.crop % 16:
        print("bench train: error: --crop must be a multiple of 16", file=sys.stderr)
        return 2
    try:
        n, m, c = (int(v) for v in args.channels.split(","))
    except ValueError:
        print("bench train: error: --channels wants N,M,C", file=sys.stderr)
        return 2

    import torch

    from bench.learned.train import TrainConfig, Trainer

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("bench train: error: CUDA is not available here; use --device cpu",
              file=sys.stderr)
        return 2
    cfg = TrainConfig(
        entropy=args.entropy, steps=args.steps, batch_size=args.batch_size, crop=args.crop,
        lr=args.lr, seed=args.seed, device=args.device,
        out=args.out or f"runs/train-{args.entropy}",
        N=n, M=m, C=c, pack=args.pack, coco_root=args.data_root, extra_dirs=args.extra_dir,
        time_budget_min=args.time_budget, checkpoint_every_min=args.checkpoint_every,
        threads=args.threads, progress=not args.no_progress,
    )
    trainer = Trainer(cfg, resume=args.resume or args.export_only)
    if args.export_only and trainer.step == 0:
        print(f"bench train: error: no checkpoint in {cfg.out} to export", file=sys.stderr)
        return 2
    print(f"training {args.entropy}: {trainer.source.describe()}; from step {trainer.step} "
          f"to {cfg.steps} on {cfg.device}", file=sys.stderr)
    if not args.export_only:
        records = trainer.run()
        if records:
            last = records[-1]
            print(f"step {last['step']}: loss {last['loss']:.4f} bpp {last['bpp']:.4f} "
                  f"PSNR {last['psnr']:.2f} dB; checkpoint {Path(cfg.out) / 'last.pt'}")
    if args.export is not None or args.export_only:
        rd = None
        if args.rd_images > 0:
            rd = _rd(trainer, args, shared_root())
        card = trainer.export(args.export or None, rd)
        print(f"exported {card['codec']}: {card['checkpoint_bytes'] / 2**20:.1f} MiB")
    return 0


def _rd(trainer, args, shared) -> dict:
    from pathlib import Path

    from bench.learned.checkpoint import build_model
    from bench.learned.rd import coco_images, kodak_images, rd_points

    model = build_model(trainer.model.config())
    model.load_state_dict({k: v.cpu() for k, v in trainer.model.state_dict().items()})
    model.eval().update(force=True)
    out = {}
    kodak = Path(args.kodak) if args.kodak else shared / "kodak"
    if kodak.is_dir():
        out["kodak_uniform"] = rd_points(model, kodak_images(kodak, args.rd_images), "none")
    try:
        out["coco_val2017_roi"] = rd_points(model, coco_images(args.data_root or shared / "coco",
                                                               "val2017", args.rd_images), "gt")
    except Exception as exc:  # no val2017 here: the card says so
        out["coco_val2017_roi"] = f"not measured: {exc}"
    return out
