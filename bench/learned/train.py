"""The resumable trainer of the learned ROI codecs (``bench train``).

What is learned is a :class:`bench.learned.recipe.Recipe` (steps planned, crops, batch,
learning-rate schedule, λ range, quality-map mix, network, precision); it is stored in every
checkpoint, and a resumed run follows the stored recipe, whatever this invocation's
``--steps`` (which only says where to stop). Loss per batch:
``bpp + 255² · mean(lambda(q) ⊙ (x − x̂)²)`` with ``bpp`` the estimated rate of ``y`` and ``z``
from the likelihoods and ``lambda(q)`` from :func:`bench.learned.qmap.lambda_of_q` over the
recipe's λ range. Adam on the network, a second Adam on the ``EntropyBottleneck`` quantiles
(compressai's auxiliary loss), gradient clipping; optionally bfloat16 transforms and an
exponential moving average of the weights, which is what gets exported.

Determinism: the batch of step ``s`` comes from ``numpy.random.default_rng([seed, s])`` and
the quantization noise from ``torch.manual_seed(f(seed, s))``; checkpoints hold the model,
both optimizers, the moving average and the step, so a resumed run repeats the
uninterrupted run's losses on the same device (CPU: also the same thread count).

Budget bookkeeping: steps, crops seen, pixels, devices, wall time (summed over resumed
sessions and over a warm start from a release of the same recipe) go into every checkpoint
and into the exported model card.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.learned import CODEC_NAMES
from bench.learned.checkpoint import (
    CAMPAIGN_DIR,
    MODEL_FORMAT,
    SNAPSHOT_FORMAT,
    WEIGHTS_DIR,
    atomic_save,
    export_model,
    export_snapshot,
    half_rounded,
    is_table,
    load,
    steps_of,
)
from bench.learned.data import ImageFolderSource, MemorySource, PackSource, make_batch
from bench.learned.network import RoiHyperprior, count_parameters
from bench.learned.qmap import LAMBDA_MAX, LAMBDA_MIN, grid_description, lambda_of_q
from bench.learned.recipe import Recipe
from bench.learned.status import session_steps
from bench.learned.widen import shape_of, widen_state

TRAIN_FORMAT = "bench-learned-train-v2"
#: consecutive non-finite gradients after which a run stops (the weights stay as they were)
MAX_SKIPPED_IN_A_ROW = 50


@dataclass
class TrainConfig:
    """Where and how one invocation trains (what is learned is the :class:`Recipe`)."""

    entropy: str = "ggm"
    out: str = "runs/train-ggm"
    device: str = "cpu"
    threads: int | None = None
    pack: str | None = None
    coco_root: str | None = None
    extra_dirs: list[str] | None = None
    #: stop this invocation at this step (the schedule still follows the recipe's total)
    stop_at: int | None = None
    time_budget_min: float | None = None
    checkpoint_every_min: float = 10.0
    log_every: int = 10
    progress: bool = True
    #: released model or campaign snapshot to warm-start from when the recipe asks for it
    #: (default: :func:`warm_start_source`)
    warm_start_from: str | None = None
    #: ``torch.compile`` the training forward pass (about 1.3× faster steps on this CPU after
    #: a compilation of a minute or two; the weights and checkpoints are the same module's)
    compile: bool = False
    #: compute in float32 where the recipe trains under bfloat16 autocast: on a CPU without
    #: native bfloat16 (:func:`cpu_has_native_bf16`) autocast is emulated and several times
    #: slower. bf16 autocast approximates float32 (``benchmarks/train_speed.py`` checks their
    #: losses agree within 3 %), so this learns an equivalent model, not a bit-identical one;
    #: each session records its precision.
    fp32: bool = False
    #: with ``pack``: crops of the pack held out from training (:class:`PackSource`)
    holdout: int = 0
    #: evaluate the moving-average weights on the held-out and as many seen crops every this
    #: many steps (0: never); each session records the evaluations
    eval_every: int = 0
    #: stop when the held-out loss has not improved for this many evaluations (0: never);
    #: the weights it stops with are its last step's, up to ``patience × eval_every`` steps
    #: past the best held-out loss
    patience: int = 0


def _cpu_flags(cpuinfo: str | None) -> list[str] | None:
    """The CPU's flags from ``/proc/cpuinfo`` (or ``cpuinfo``'s text); None where unread."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return None
    return next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines()
                 if line.startswith("flags")), None)


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool | None:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX-BF16), from the
    flags in ``/proc/cpuinfo`` (or ``cpuinfo``'s text); None where that cannot be read.

    Without them PyTorch's CPU autocast emulates bfloat16: on an AMD EPYC (Zen 3) a
    release-3 training step took 40 s under bf16 autocast against 5.5 s in float32
    (one thread, eager, the same batches, 2026-12-04)."""
    flags = _cpu_flags(cpuinfo)
    if flags is None:
        return None
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_has_amx_bf16(cpuinfo: str | None = None) -> bool | None:
    """Whether this CPU has AMX-BF16 tile units (``amx_bf16`` in ``/proc/cpuinfo``), where
    bfloat16 autocast pays most; None where the flags cannot be read."""
    flags = _cpu_flags(cpuinfo)
    return None if flags is None else "amx_bf16" in flags


def precision_warning(recipe_autocast: bool, fp32: bool, native_bf16: bool | None,
                      amx_bf16: bool | None = None) -> str:
    """What ``bench train`` should warn about the precision asked for on this CPU, or "".

    ``recipe_autocast``: the recipe trains under bfloat16 autocast; ``fp32``: ``--fp32`` was
    given; ``native_bf16``: :func:`cpu_has_native_bf16`; ``amx_bf16``:
    :func:`cpu_has_amx_bf16` (None: unknown). Without native bfloat16 autocast is emulated
    and about 7× slower than float32 (AMD EPYC Zen 3: 40 s against 5.5 s a step). With AMX,
    float32 is the slow choice (an Intel Xeon with AMX-BF16: about 3× fewer release-3 steps
    per hour in float32, 2026-12-05); with AVX-512 BF16 alone it is no faster (an AMD EPYC
    Zen 4: 1,338 float32 steps an hour against 1,400-1,800 under bf16 autocast, one thread
    each beside another trainer, 2026-12-07), so ``--fp32`` there only leaves the recipe's
    precision.
    """
    if not recipe_autocast or native_bf16 is None:
        return ""
    if fp32 and native_bf16 and amx_bf16 is False:
        return ("--fp32 on a CPU with AVX-512 BF16 (avx512_bf16 in /proc/cpuinfo, no "
                "amx_bf16): float32 measured no faster than the recipe's bf16 autocast on "
                "such a CPU (an AMD EPYC Zen 4), and the run leaves the recipe's precision; "
                "drop --fp32 unless you mean it")
    if fp32 and native_bf16:
        return ("--fp32 on a CPU with native bfloat16 (avx512_bf16 or amx_bf16 in "
                "/proc/cpuinfo): the recipe's bf16 autocast is several times faster with "
                "AMX (about 3x on an Intel Xeon); drop --fp32 unless you mean it")
    if not fp32 and not native_bf16:
        return ("this CPU has no native bfloat16 (no avx512_bf16 or amx_bf16 in /proc/cpuinfo), "
                "so the recipe's bf16 autocast is emulated, about 7x slower than float32 "
                "(measured on an AMD EPYC Zen 3); add --fp32 to train in float32 here")
    return ""


def warm_start_source(entropy: str, recipe: str,
                      candidates: list[Path] | None = None) -> Path:
    """The model a warm-starting recipe begins from when its state folder is empty: of the
    codec's committed campaign snapshot and its release, the one furthest along ``recipe``
    (the first candidate, the release, on a tie or when none is a model of that recipe)."""
    codec = CODEC_NAMES[entropy]
    if candidates is None:
        candidates = [WEIGHTS_DIR / f"{codec}.pt", CAMPAIGN_DIR / f"{codec}.pt"]
    steps = [steps_of(p, recipe) for p in candidates]
    return candidates[steps.index(max(steps))]


def to_tensors(images: np.ndarray, qmaps: np.ndarray, device: str | torch.device = "cpu"
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch as the network takes it: images (B×H×W×3 uint8) as B×3×H×W in [0, 1], quality
    maps (B×H×W) as B×1×H×W."""
    x = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    return x, torch.from_numpy(qmaps).to(device).unsqueeze(1)


@torch.no_grad()
def mean_rd_terms(model: RoiHyperprior, batches, lambda_min: float, lambda_max: float,
                  device: str | torch.device = "cpu") -> dict[str, float]:
    """Mean ``loss``, ``bpp`` and weighted distortion ``dist`` of ``model`` (as it is: eval or
    train mode) over ``batches`` of (images, quality maps), per image."""
    sums = {"loss": 0.0, "bpp": 0.0, "dist": 0.0}
    count = 0
    for images, qmaps in batches:
        x, q = to_tensors(images, qmaps, device)
        terms = rd_loss(model(x, q), x, q, lambda_min, lambda_max)
        for key in sums:
            sums[key] += float(terms[key]) * len(images)
        count += len(images)
    return {key: value / count for key, value in sums.items()}


def heldout_stalled(losses: list[float], patience: int) -> bool:
    """Whether the last ``patience`` held-out losses are all above the best before them
    (``patience`` 0: never)."""
    if patience <= 0 or len(losses) <= patience:
        return False
    return min(losses[-patience:]) >= min(losses[:-patience])


def _noise_seed(seed: int, step: int) -> int:
    return (seed * 1_000_003 + step * 7919 + 17) % (2**63)


def catch_stop_signals(signalled: list[int]) -> dict:
    """SIGTERM and SIGINT end training after the current step, with a checkpoint (a session's
    end or a ``kill`` loses nothing); returns the previous handlers (main thread only)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, lambda num, _frame: signalled.append(num))
    return previous


def restore_signals(previous: dict) -> None:
    import signal

    for sig, handler in previous.items():
        signal.signal(sig, handler)


def rd_loss(out: dict, x: torch.Tensor, q: torch.Tensor, lambda_min: float = LAMBDA_MIN,
            lambda_max: float = LAMBDA_MAX) -> dict:
    """Loss terms of one batch: ``loss``, ``bpp``, ``mse`` (on [0, 1]), weighted distortion."""
    n, _, h, w = x.shape
    pixels = n * h * w
    bits = sum((-torch.log2(lik)).sum() for lik in out["likelihoods"].values())
    bpp = bits / pixels
    err = (out["x_hat"] - x).pow(2)
    dist = 255.0**2 * (lambda_of_q(q, lambda_min, lambda_max) * err).mean()
    return {"loss": bpp + dist, "bpp": bpp, "mse": err.mean(), "dist": dist}


class Trainer:
    """Holds the model, optimizers, data source and budget; ``run()`` trains.

    ``resume``: True continues from ``OUT/last.pt`` when it exists (its stored recipe wins
    over ``recipe``, so the schedule never moves), a path continues from that checkpoint.
    Without a checkpoint, a recipe with ``warm_start`` starts from the released weights of
    the codec (continuing that release's step count when it was made by the same recipe).
    """

    def __init__(self, recipe: Recipe, config: TrainConfig,
                 resume: str | os.PathLike | bool | None = None):
        self.cfg = config
        if config.threads:
            torch.set_num_threads(config.threads)
        self.device = torch.device(config.device)
        self.out = Path(config.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.step = 0
        self.wall_s = 0.0
        self.sessions: list[dict] = []
        self.history: list[dict] = []
        self.warm_start: dict | None = None
        self.ema: dict[str, torch.Tensor] | None = None
        self.skipped_steps = 0
        self._session: dict | None = None
        self._eval_batches: dict | None = None
        #: stopped because the held-out loss stopped improving (``patience``)
        self.stalled = False
        #: the signal (SIGTERM, SIGINT) that ended the last :meth:`run`, if one did: a run
        #: in turns (``--entropy both``) stops every codec on it
        self.stop_signal: int | None = None
        #: why the last :meth:`run` ended (``"steps"`` when it reached its goal), as its
        #: session records it; a run in turns stops every codec when one ends on a fault
        self.last_stop: str | None = None
        blob = None
        if resume:
            path = self.out / "last.pt" if resume is True else Path(resume)
            if path.is_file():
                blob = load(path, self.device)
                if blob.get("format") != TRAIN_FORMAT:
                    raise ValueError(f"{path} is a training checkpoint of format "
                                     f"{blob.get('format')!r}, not {TRAIN_FORMAT!r}; start a "
                                     f"new run (another --out)")
                stored = Recipe.from_json(blob["recipe"])
                if stored.name != recipe.name and recipe.name != "custom":
                    raise ValueError(f"{path} continues recipe {stored.name!r}, not "
                                     f"{recipe.name!r}; use another --out")
                recipe = stored
            elif resume is not True:
                raise FileNotFoundError(f"no checkpoint at {path}")
        self.recipe = recipe
        #: whether the transforms run under bfloat16 autocast (the recipe's, unless ``fp32``)
        self.autocast = recipe.autocast and not config.fp32
        self.source = self._source()
        torch.manual_seed(recipe.seed)
        self.model = RoiHyperprior(config.entropy, **recipe.network()).to(self.device)
        if recipe.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        aux_names = {n for n, _ in self.model.named_parameters() if n.endswith(".quantiles")}
        params = dict(self.model.named_parameters())
        # fused: one pass over all the weights instead of a loop of small kernels per tensor
        # (6 against 19 ms a step for this network on one core, about 1.3 % of a CPU step)
        self.opt = torch.optim.Adam([params[n] for n in sorted(params) if n not in aux_names],
                                    lr=recipe.lr, fused=True)
        self.aux_opt = torch.optim.Adam([params[n] for n in sorted(aux_names)], lr=recipe.aux_lr)
        if blob is not None:
            self._load(blob)
        elif recipe.warm_start:
            self._warm_start(Path(config.warm_start_from) if config.warm_start_from else
                             warm_start_source(config.entropy, recipe.name))
        self.forward = torch.compile(self.model) if config.compile else self.model
        #: steps since the moving average started, for its bias correction (old: corrected)
        self._ema_start = -10**9
        if recipe.ema and self.ema is None:
            self.ema = {n: p.detach().float().clone() for n, p in self.model.named_parameters()}
            self._ema_start = self.step

    def _source(self):
        if self.cfg.holdout and not self.cfg.pack:
            raise ValueError("holding out crops needs a training pack (--pack)")
        if self.cfg.eval_every and not self.cfg.holdout:
            raise ValueError("evaluating needs held-out crops of a pack (--pack, --holdout)")
        if self.cfg.patience and not self.cfg.eval_every:
            raise ValueError("stopping on the held-out loss needs evaluations (--eval-every)")
        if self.cfg.pack:
            return PackSource(self.cfg.pack, self.cfg.holdout)
        if self.recipe.source == "memory":
            return MemorySource(self.cfg.coco_root, self.cfg.extra_dirs)
        return ImageFolderSource(self.cfg.coco_root, self.cfg.extra_dirs)

    # ------------------------------------------------------------------ state
    def _state(self) -> dict:
        state = {
            "format": TRAIN_FORMAT,
            "recipe": self.recipe.to_json(),
            "entropy": self.cfg.entropy,
            "config": self.model.config(),
            "model": self.model.state_dict(),
            "opt": self.opt.state_dict(),
            "aux_opt": self.aux_opt.state_dict(),
            "step": self.step,
            "wall_s": self.wall_s,
            "sessions": json.dumps(self.sessions),
            "warm_start": json.dumps(self.warm_start),
            "skipped_steps": self.skipped_steps,
        }
        if self.ema is not None:
            state["ema"] = self.ema
        return state

    def _load(self, blob: dict) -> None:
        if blob["config"] != self.model.config():
            raise ValueError(f"checkpoint is for {blob['config']}, not {self.model.config()}")
        self.model.load_state_dict(blob["model"])
        self.opt.load_state_dict(blob["opt"])
        for group in self.opt.param_groups:  # older checkpoints stored the per-tensor loop
            group.update(fused=True, foreach=None)
        self.aux_opt.load_state_dict(blob["aux_opt"])
        self.step = int(blob["step"])
        self.wall_s = float(blob["wall_s"])
        self.sessions = json.loads(blob["sessions"])
        self.warm_start = json.loads(blob["warm_start"])
        self.skipped_steps = int(blob.get("skipped_steps", 0))
        self.ema = blob.get("ema")

    def _warm_start(self, path: Path) -> None:
        """Initialize from a released model or a campaign snapshot; parameters it lacks
        (gains) keep their init. The optimizers start afresh (neither file holds them)."""
        if not path.is_file():
            raise FileNotFoundError(f"recipe {self.recipe.name} warm-starts from {path}, which "
                                    f"does not exist; pass --warm-start PATH or use --out with "
                                    f"a checkpoint")
        blob = load(path)
        snapshot = blob.get("format") == SNAPSHOT_FORMAT
        if blob.get("format") not in (MODEL_FORMAT, SNAPSHOT_FORMAT) \
                or blob["config"]["entropy"] != self.cfg.entropy:
            raise ValueError(f"{path} is not a released {self.cfg.entropy} model or a "
                             f"campaign snapshot of one")
        card = blob.get("card", {})
        card_recipe = card.get("recipe", {}).get("name")
        own = self.model.state_dict()
        widened = None
        source_state = blob["state_dict"]
        width = shape_of(blob["config"])
        if width != shape_of(self.model.config()):
            # a wider or deeper recipe: the old weights in the leading channels, new residual
            # blocks as the identity (bench.learned.widen)
            widened = width
            try:
                source_state = widen_state(
                    {k: v for k, v in source_state.items() if not is_table(k)},
                    blob["config"], self.model)
            except ValueError as error:
                raise ValueError(f"recipe {self.recipe.name} cannot warm-start from {path} "
                                 f"({card_recipe or 'another recipe'}): {error}; pass "
                                 f"--warm-start PATH with a model no wider or deeper than the "
                                 f"recipe's network") from error
        state = {k: v for k, v in source_state.items() if k in own}
        missing = sorted(k for k in set(own) - set(state) if not is_table(k))
        # a snapshot has no coding tables: the model keeps its own (training needs none)
        state.update({k: v for k, v in own.items() if is_table(k) and k not in state})
        result = self.model.load_state_dict(state, strict=False)
        allowed = {"log_gain", "log_inv_gain"}
        if set(result.missing_keys) - allowed:
            raise ValueError(f"{path} lacks {sorted(set(result.missing_keys) - allowed)}")
        self.warm_start = {"from": path.name, "card_recipe": card_recipe,
                           "card_steps": card.get("budget", {}).get("steps"),
                           "initialized": missing}
        if widened:
            self.warm_start["widened_from"] = widened
        if card_recipe == self.recipe.name:
            # the release is a snapshot of this very recipe: continue its schedule and budget
            budget = card["budget"]
            self.step = int(budget["steps"])
            self.wall_s = float(budget.get("wall_time_s", 0.0))
            self.sessions = list(budget.get("sessions", []))
            self.warm_start = card.get("warm_start", self.warm_start)
            key = "resumed_snapshot" if snapshot else "resumed_release"
            self.warm_start = dict(self.warm_start or {}, **{key: path.name})

    def describe_warm_start(self) -> str:
        """One line on where the weights came from, for the log ("" when trained from
        scratch), so a run that should have been widened or resumed can be checked at once."""
        ws = self.warm_start
        if not ws:
            return ""
        text = f"warm-started from {ws['from']}"
        if ws.get("card_recipe") or ws.get("card_steps") is not None:
            what = [str(ws.get("card_recipe") or "unnamed recipe")]
            if ws.get("card_steps") is not None:
                what.append(f"{ws['card_steps']} steps")
            text += f" ({', '.join(what)})"
        if ws.get("widened_from"):
            shape = shape_of(self.model.config())
            grown = [k for k, v in ws["widened_from"].items() if shape.get(k) != v]
            old = ", ".join(f"{k}={ws['widened_from'][k]}" for k in grown)
            new = ", ".join(f"{k}={shape[k]}" for k in grown)
            text += f", grown from {old} to {new}"
        for key, verb in (("resumed_release", "continuing release"),
                          ("resumed_snapshot", "continuing snapshot")):
            if ws.get(key):
                text += f", {verb} {ws[key]}"
        return text

    def save(self, name: str = "last.pt") -> Path:
        """Write a checkpoint atomically; never one with non-finite weights (the previous
        checkpoint stays, so a run that went wrong resumes from before it)."""
        path = self.out / name
        bad = [n for n, p in self.model.named_parameters() if not torch.isfinite(p).all()]
        if bad:
            print(f"not saving {path}: non-finite weights in {', '.join(bad[:5])}",
                  file=sys.stderr)
            return path
        atomic_save(self._state(), path)
        return path

    def budget(self) -> dict:
        """What was spent: steps, crops seen, pixels, devices, wall time."""
        r = self.recipe
        return {
            "steps": self.step,
            "batch_size": r.batch_size,
            "crop": r.crop,
            "crops_seen": self.step * r.batch_size,
            "crops_128_equivalent": self.step * r.pixels_per_step() // (128 * 128),
            "wall_time_s": round(self.wall_s, 1),
            "skipped_steps": self.skipped_steps,
            "devices": sorted({s["device"] for s in self.sessions} | {self._device_name()}),
            "sessions": self.sessions,
        }

    def evaluate(self) -> dict:
        """Mean loss of the weights to release on the pack's held-out crops and on as many
        crops it trains on: a widening gap is training that fits the pack."""
        r = self.recipe
        if self._eval_batches is None:
            self._eval_batches = self.source.eval_batches(r.crop, r.qmap_weights)
        model = self.release_model().to(self.device).eval()
        out = {"step": self.step}
        for name, batches in self._eval_batches.items():
            terms = mean_rd_terms(model, batches, r.lambda_min, r.lambda_max, self.device)
            out[f"{name}_loss"] = terms["loss"]
        return out

    def _sessions_on_this_data(self) -> list[dict]:
        """The sessions, this one included, that trained on the same crops as this one."""
        data = self.source.describe()
        return [s for s in self.sessions if s.get("data") == data]

    def _heldout_history(self) -> list[float]:
        """Held-out losses of every session on the same pack and held-out crops, in order (an
        eager restart after a failed compile goes on counting where the first left off)."""
        return [e[1] for s in self._sessions_on_this_data()
                if s.get("holdout") == self.cfg.holdout for e in s.get("evals", [])]

    def steps_on_this_data(self) -> int:
        """Steps that earlier sessions of this run took on the same crops as this one (the
        same pack, say): a small pack seen again is fitted, not learned from."""
        return sum(session_steps(s) for s in self._sessions_on_this_data()
                   if s is not self._session)

    def _device_name(self) -> str:
        if self.device.type == "cuda":
            return f"cuda:{torch.cuda.get_device_name(self.device)}"
        return f"cpu:{platform.processor() or platform.machine()}x{torch.get_num_threads()}"

    # ------------------------------------------------------------------ training
    def lr_at(self, step: int) -> float:
        """The recipe's learning rate at ``step`` (from its planned total)."""
        return self.recipe.lr_at(step)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The inputs of ``step``: images (B×3×H×W in [0, 1]) and quality maps (B×1×H×W)."""
        r = self.recipe
        images, qmaps, _ = make_batch(self.source, step, r.seed, r.batch_size, r.crop,
                                      r.qmap_weights)
        x, q = to_tensors(images, qmaps, self.device)
        if r.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, q

    def train_step(self) -> dict:
        r = self.recipe
        x, q = self.batch(self.step)
        torch.manual_seed(_noise_seed(r.seed, self.step))
        lr = self.lr_at(self.step)
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.model.train()
        out = self.forward(x, q, autocast=self.autocast, rate=r.rate)
        terms = rd_loss(out, x, q, r.lambda_min, r.lambda_max)
        self.opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        norm = torch.nn.utils.clip_grad_norm_(self.opt.param_groups[0]["params"],
                                              r.clip or float("inf"))
        # a non-finite gradient would poison every weight (and the next checkpoint): skip the
        # update, as mixed-precision training does, and count it
        skipped = not bool(torch.isfinite(norm))
        if skipped:
            self.skipped_steps += 1
        else:
            self.opt.step()
        aux = self.model.aux_loss()
        self.aux_opt.zero_grad(set_to_none=True)
        aux.backward()
        if torch.isfinite(aux):
            self.aux_opt.step()
        self._update_ema()
        self.step += 1
        # one device-to-host copy for the log, not four (each is a GPU sync)
        loss, bpp, mse, aux_value = torch.stack(
            [t.detach().float() for t in (terms["loss"], terms["bpp"], terms["mse"], aux)]).tolist()
        return {"step": self.step, "loss": loss, "skipped": skipped, "bpp": bpp, "lr": lr,
                "psnr": 10 * math.log10(1.0 / max(mse, 1e-12)), "aux": aux_value}

    @torch.no_grad()
    def _update_ema(self) -> None:
        """Exponential moving average of the weights (bias-corrected while it is young)."""
        if self.ema is None:
            return
        n = self.step - self._ema_start
        decay = min(self.recipe.ema, (1 + n) / (10 + n))
        # one lerp over all tensors: 1 ms against 5 ms for a loop of mul_/add_ per tensor
        pairs = [(self.ema[name], p.detach().float()) for name, p in self.model.named_parameters()]
        torch._foreach_lerp_([e for e, _ in pairs], [p for _, p in pairs], 1 - decay)

    def release_state(self) -> dict:
        """The weights to release: the moving average where the recipe keeps one."""
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        if self.ema is not None:
            state.update({k: v.detach().cpu().clone() for k, v in self.ema.items()})
        return state

    @property
    def end_step(self) -> int:
        """The step this run ends at: the recipe's last, or ``--steps`` when that is sooner."""
        stop_at = self.cfg.stop_at
        return self.recipe.steps if stop_at is None else min(self.recipe.steps, stop_at)

    def run(self, stop_at_step: int | None = None) -> list[dict]:
        """Train until ``steps`` (or ``stop_at_step``, or the time budget); checkpoint; return
        the per-step records of this call. Calls on one Trainer make one session record."""
        cfg = self.cfg
        end = self.end_step
        target = end if stop_at_step is None else min(end, stop_at_step)
        start_time = time.monotonic()
        last_ckpt = start_time
        first_step = self.step
        if self._session is None:  # one record per Trainer, however many run() calls
            self._session = {"device": self._device_name(), "start_step": first_step,
                             "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                             "recipe": self.recipe.name, "planned_steps": self.recipe.steps,
                             "precision": "bf16 autocast" if self.autocast else "fp32",
                             # which crops: a GPU lease's pack is a small sample of them
                             "data": self.source.describe()}
            if cfg.holdout:
                self._session["holdout"] = cfg.holdout
            self.sessions.append(self._session)
        session = self._session
        earlier_s = session.get("seconds", 0.0)
        records: list[dict] = []
        bar = None
        if cfg.progress and os.environ.get("BENCH_PROGRESS", "1") != "0":
            from tqdm import tqdm

            bar = tqdm(total=target, initial=min(self.step, target), desc=f"train {cfg.entropy}",
                       unit="step", file=sys.stderr)
        log = open(self.out / "train.log.jsonl", "a")
        stopped = "steps"
        signalled: list[int] = []
        handlers = catch_stop_signals(signalled)
        streak = 0
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
                streak = streak + 1 if rec["skipped"] else 0
                if not math.isfinite(rec["loss"]) or streak >= MAX_SKIPPED_IN_A_ROW:
                    stopped = "non-finite loss" if not math.isfinite(rec["loss"]) else \
                        f"{streak} non-finite gradients in a row"
                    break
                if cfg.eval_every and self.step % cfg.eval_every == 0:
                    ev = self.evaluate()
                    session.setdefault("evals", []).append(
                        [ev["step"], round(ev["heldout_loss"], 5), round(ev["seen_loss"], 5)])
                    log.write(json.dumps(ev) + "\n")
                    log.flush()
                    print(f"{cfg.entropy} step {self.step}: held-out loss "
                          f"{ev['heldout_loss']:.4f}, seen {ev['seen_loss']:.4f}",
                          file=sys.stderr, flush=True)
                    if heldout_stalled(self._heldout_history(), cfg.patience):
                        stopped = f"held-out loss not better for {cfg.patience} evaluations"
                        self.stalled = True
                        break
                if signalled:
                    stopped = f"signal {signalled[0]}"
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
            restore_signals(handlers)
            # a turn of a run in turns (``--entropy both``) that reached its goal leaves the
            # session open: the next turn goes on with it, and a process killed between turns
            # must not read as a session that ended normally
            turn_ended = stopped == "steps" and self.step < end
            session.update(end_step=self.step, stopped="running" if turn_ended else stopped,
                           seconds=round(earlier_s + time.monotonic() - start_time, 1))
            if bar is not None:
                bar.close()
            log.close()
            if stopped != "non-finite loss":
                self.save()  # refuses non-finite weights, keeping the last good checkpoint
        self.stop_signal = signalled[0] if signalled else None
        self.last_stop = stopped
        if stopped != "steps":
            print(f"stopped at step {self.step}: {stopped}; checkpoint {self.out / 'last.pt'}",
                  file=sys.stderr)
        return records

    def mark_stopped(self, reason: str) -> None:
        """Record why a run driven from outside in turns of steps (``--entropy both``) ended,
        in its session and checkpoint: each turn itself ends on ``steps``."""
        if self._session is not None and self._session.get("stopped") != reason:
            self._session["stopped"] = reason
            self.save()

    # ------------------------------------------------------------------ release
    def model_card(self) -> dict:
        recent = self.history[-200:]
        r = self.recipe
        card = {
            "codec": CODEC_NAMES[self.cfg.entropy],
            "entropy": self.cfg.entropy,
            "architecture": dict(self.model.config(), parameters=count_parameters(self.model)),
            "data": self.source.describe() + "; never val2017",
            "recipe": json.loads(r.to_json()),
            "budget": self.budget(),
            "warm_start": self.warm_start,
            "optimizer": {"lr": r.lr, "aux_lr": r.aux_lr, "seed": r.seed, "clip": r.clip,
                          "schedule": r.describe(), "ema": r.ema},
            "lambda": f"{r.lambda_min:g}*{r.lambda_max / r.lambda_min:g}**q",
            "grid": grid_description(),
            "torch": str(torch.__version__),
        }
        if recent:
            card["train_last"] = {k: float(np.mean([rec[k] for rec in recent]))
                                  for k in ("loss", "bpp", "psnr")}
        return card

    def snapshot(self, path: str | os.PathLike | None = None) -> dict:
        """Write the campaign snapshot (default: the package's campaign folder) that a new
        machine continues this run from (:func:`warm_start_source`)."""
        path = Path(path) if path else CAMPAIGN_DIR / f"{CODEC_NAMES[self.cfg.entropy]}.pt"
        return export_snapshot(self.release_state(), self.model.config(), self.model_card(),
                               path)

    def release_model(self) -> RoiHyperprior:
        """A CPU copy of the network with the weights to release (see :meth:`release_state`)."""
        model = RoiHyperprior(self.cfg.entropy, **self.recipe.network())
        state = self.release_state()
        if self.recipe.half_weights:
            state = {k: half_rounded(v) for k, v in state.items()}
        model.load_state_dict(state)
        return model

    def export(self, path: str | os.PathLike | None = None, rd: dict | None = None) -> dict:
        """Write the released model (default: the package's weights folder)."""
        path = Path(path) if path else WEIGHTS_DIR / f"{CODEC_NAMES[self.cfg.entropy]}.pt"
        card = self.model_card()
        if rd:
            card["rd"] = rd
        return export_model(self.release_model(), path, card)
