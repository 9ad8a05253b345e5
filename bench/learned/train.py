"""The resumable trainer of the learned ROI codecs (``bench train``).

Loss per batch: ``bpp + 255² · mean(lambda(q) ⊙ (x − x̂)²)`` with ``bpp`` the estimated rate of
``y`` and ``z`` from the likelihoods and ``lambda(q)`` from :func:`bench.learned.qmap.lambda_of_q`
(0.001–0.1). Adam on the network, a second Adam on the ``EntropyBottleneck`` quantiles
(compressai's auxiliary loss), gradient clipping at 1, learning rate ×0.1 for the last 10 %
of ``steps``.

Determinism: the batch of step ``s`` comes from ``numpy.random.default_rng([seed, s])`` and
the quantization noise from ``torch.manual_seed(f(seed, s))``; checkpoints hold the model,
both optimizers and the step, so a resumed run repeats the uninterrupted run's losses on
the same device (CPU: also the same thread count).

Budget bookkeeping: steps, crops seen, device, wall time (summed over resumed sessions) go
into every checkpoint and into the exported model card.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from bench.learned import CODEC_NAMES
from bench.learned.checkpoint import WEIGHTS_DIR, atomic_save, export_model, load
from bench.learned.data import ImageFolderSource, PackSource, make_batch
from bench.learned.network import RoiHyperprior, count_parameters
from bench.learned.qmap import grid_description, lambda_of_q


@dataclass
class TrainConfig:
    entropy: str = "ggm"
    steps: int = 100_000
    batch_size: int = 8
    crop: int = 256
    lr: float = 1e-4
    aux_lr: float = 1e-3
    seed: int = 0
    device: str = "cpu"
    out: str = "runs/train-ggm"
    N: int = 96
    M: int = 128
    C: int = 32
    pack: str | None = None
    coco_root: str | None = None
    extra_dirs: list[str] | None = None
    time_budget_min: float | None = None
    checkpoint_every_min: float = 10.0
    log_every: int = 10
    clip: float = 1.0
    threads: int | None = None
    progress: bool = True
    history: list = field(default_factory=list, repr=False)


def _noise_seed(seed: int, step: int) -> int:
    return (seed * 1_000_003 + step * 7919 + 17) % (2**63)


def rd_loss(out: dict, x: torch.Tensor, q: torch.Tensor) -> dict:
    """Loss terms of one batch: ``loss``, ``bpp``, ``mse`` (on [0, 1]), weighted distortion."""
    n, _, h, w = x.shape
    pixels = n * h * w
    bits = sum((-torch.log2(lik)).sum() for lik in out["likelihoods"].values())
    bpp = bits / pixels
    err = (out["x_hat"] - x).pow(2)
    dist = 255.0**2 * (lambda_of_q(q) * err).mean()
    return {"loss": bpp + dist, "bpp": bpp, "mse": err.mean(), "dist": dist}


class Trainer:
    """Holds the model, optimizers, data source and budget; ``run()`` trains."""

    def __init__(self, config: TrainConfig, resume: str | os.PathLike | bool | None = None):
        self.cfg = config
        if config.threads:
            torch.set_num_threads(config.threads)
        self.device = torch.device(config.device)
        self.out = Path(config.out)
        self.out.mkdir(parents=True, exist_ok=True)
        if config.pack:
            self.source = PackSource(config.pack)
        else:
            self.source = ImageFolderSource(config.coco_root, config.extra_dirs)
        torch.manual_seed(config.seed)
        self.model = RoiHyperprior(config.entropy, config.N, config.M, config.C).to(self.device)
        aux_names = {n for n, _ in self.model.named_parameters() if n.endswith(".quantiles")}
        params = dict(self.model.named_parameters())
        self.opt = torch.optim.Adam([params[n] for n in sorted(params) if n not in aux_names],
                                    lr=config.lr)
        self.aux_opt = torch.optim.Adam([params[n] for n in sorted(aux_names)], lr=config.aux_lr)
        self.step = 0
        self.wall_s = 0.0
        self.sessions: list[dict] = []
        self.history: list[dict] = []
        if resume:
            path = self.out / "last.pt" if resume is True else Path(resume)
            if path.is_file():
                self._load(path)
            elif resume is not True:
                raise FileNotFoundError(f"no checkpoint at {path}")

    # ------------------------------------------------------------------ state
    def _state(self) -> dict:
        cfg = asdict(self.cfg)
        cfg.pop("history", None)
        return {
            "format": "bench-learned-train-v1",
            "config": self.model.config(),
            "train_config": json.dumps(cfg),
            "model": self.model.state_dict(),
            "opt": self.opt.state_dict(),
            "aux_opt": self.aux_opt.state_dict(),
            "step": self.step,
            "wall_s": self.wall_s,
            "sessions": json.dumps(self.sessions),
        }

    def _load(self, path: Path) -> None:
        blob = load(path, self.device)
        if blob["config"] != self.model.config():
            raise ValueError(f"checkpoint {path} is for {blob['config']}, not "
                             f"{self.model.config()}")
        self.model.load_state_dict(blob["model"])
        self.opt.load_state_dict(blob["opt"])
        self.aux_opt.load_state_dict(blob["aux_opt"])
        self.step = int(blob["step"])
        self.wall_s = float(blob["wall_s"])
        self.sessions = json.loads(blob["sessions"])

    def save(self, name: str = "last.pt") -> Path:
        path = self.out / name
        atomic_save(self._state(), path)
        return path

    def budget(self) -> dict:
        """What was spent: steps, crops seen, devices, wall time."""
        return {
            "steps": self.step,
            "batch_size": self.cfg.batch_size,
            "crop": self.cfg.crop,
            "crops_seen": self.step * self.cfg.batch_size,
            "wall_time_s": round(self.wall_s, 1),
            "devices": sorted({s["device"] for s in self.sessions} | {self._device_name()}),
            "sessions": self.sessions,
        }

    def _device_name(self) -> str:
        if self.device.type == "cuda":
            return f"cuda:{torch.cuda.get_device_name(self.device)}"
        return f"cpu:{platform.processor() or platform.machine()}x{torch.get_num_threads()}"

    # ------------------------------------------------------------------ training
    def lr_at(self, step: int) -> float:
        return self.cfg.lr * (0.1 if step >= int(0.9 * self.cfg.steps) else 1.0)

    def train_step(self) -> dict:
        cfg = self.cfg
        images, qmaps, _ = make_batch(self.source, self.step, cfg.seed, cfg.batch_size, cfg.crop)
        x = torch.from_numpy(images).to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
        q = torch.from_numpy(qmaps).to(self.device).unsqueeze(1)
        torch.manual_seed(_noise_seed(cfg.seed, self.step))
        for group in self.opt.param_groups:
            group["lr"] = self.lr_at(self.step)
        self.model.train()
        out = self.model(x, q)
        terms = rd_loss(out, x, q)
        self.opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        if cfg.clip:
            torch.nn.utils.clip_grad_norm_(self.opt.param_groups[0]["params"], cfg.clip)
        self.opt.step()
        aux = self.model.aux_loss()
        self.aux_opt.zero_grad(set_to_none=True)
        aux.backward()
        self.aux_opt.step()
        self.step += 1
        mse = terms["mse"].detach().item()
        return {"step": self.step, "loss": terms["loss"].detach().item(),
                "bpp": terms["bpp"].detach().item(),
                "psnr": 10 * math.log10(1.0 / max(mse, 1e-12)), "aux": aux.detach().item()}

    def run(self, stop_at_step: int | None = None) -> list[dict]:
        """Train until ``steps`` (or ``stop_at_step``, or the time budget); checkpoint; return
        the per-step records of this session."""
        cfg = self.cfg
        target = min(cfg.steps, stop_at_step) if stop_at_step is not None else cfg.steps
        start_time = time.monotonic()
        last_ckpt = start_time
        first_step = self.step
        session = {"device": self._device_name(), "start_step": first_step,
                   "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "lr": cfg.lr,
                   "planned_steps": cfg.steps}
        self.sessions.append(session)
        records: list[dict] = []
        bar = None
        if cfg.progress and os.environ.get("BENCH_PROGRESS", "1") != "0":
            from tqdm import tqdm

            bar = tqdm(total=target, initial=self.step, desc=f"train {cfg.entropy}",
                       unit="step", file=sys.stderr)
        log = open(self.out / "train.log.jsonl", "a")
        stopped = "steps"
        try:
            while self.step < target:
                t0 = time.monotonic()
                rec = self.train_step()
                self.wall_s += time.monotonic() - t0
                records.append(rec)
                self.history.append(rec)
                if rec["step"] % cfg.log_every == 0 or rec["step"] == target:
                    log.write(json.dumps(rec) + "\n")
                    log.flush()
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{rec['loss']:.3f}", bpp=f"{rec['bpp']:.3f}",
                                    psnr=f"{rec['psnr']:.2f}")
                if not math.isfinite(rec["loss"]):
                    stopped = "non-finite loss"
                    break
                now = time.monotonic()
                if cfg.time_budget_min is not None and now - start_time >= 60 * cfg.time_budget_min:
                    stopped = "time budget"
                    break
                if now - last_ckpt >= 60 * cfg.checkpoint_every_min:
                    session.update(end_step=self.step, stopped="running")
                    self.save()
                    last_ckpt = now
        finally:
            session.update(end_step=self.step, stopped=stopped,
                           seconds=round(time.monotonic() - start_time, 1))
            if bar is not None:
                bar.close()
            log.close()
            if stopped != "non-finite loss":
                self.save()
        if stopped != "steps":
            print(f"stopped at step {self.step}: {stopped}; checkpoint {self.out / 'last.pt'}",
                  file=sys.stderr)
        return records

    # ------------------------------------------------------------------ release
    def model_card(self) -> dict:
        recent = self.history[-200:]
        card = {
            "codec": CODEC_NAMES[self.cfg.entropy],
            "entropy": self.cfg.entropy,
            "architecture": dict(self.model.config(), parameters=count_parameters(self.model)),
            "data": self.source.describe() + "; never val2017",
            "budget": self.budget(),
            "optimizer": {"lr": self.cfg.lr, "aux_lr": self.cfg.aux_lr, "seed": self.cfg.seed,
                          "clip": self.cfg.clip, "lr_decay": "x0.1 for the last 10% of steps"},
            "lambda": "0.001*100**q", "grid": grid_description(),
            "torch": str(torch.__version__),
        }
        if recent:
            card["train_last"] = {k: float(np.mean([r[k] for r in recent]))
                                  for k in ("loss", "bpp", "psnr")}
        return card

    def export(self, path: str | os.PathLike | None = None, rd: dict | None = None) -> dict:
        """Write the released model (default: the package's weights folder)."""
        path = Path(path) if path else WEIGHTS_DIR / f"{CODEC_NAMES[self.cfg.entropy]}.pt"
        card = self.model_card()
        if rd:
            card["rd"] = rd
        model = RoiHyperprior(**self.model.config())
        model.load_state_dict({k: v.cpu() for k, v in self.model.state_dict().items()})
        return export_model(model, path, card)
