"""Named training recipes: everything that decides what a training run learns.

A recipe fixes the planned total of steps, the crops, the batch, the learning-rate schedule
(computed from the planned total, never from one invocation's ``--steps``), the λ range, the
quality-map mix, the network shape and the numeric precision. It is stored in every training
checkpoint and in the released model's card, so ``bench train --recipe NAME`` continues a run
from wherever it stopped with the same schedule, and a release says how it was made.

``release-1`` describes what release 1 did (for the record and the speed benchmark);
``release-2`` is the campaign of the second release: gain-vector rate control, 256² crops
(the hyper-latent gets 4×4 positions), a λ range reaching lower rates, more two-level
object-aligned quality maps, bfloat16 transforms, an exponential moving average of the
weights (what is exported), and a warm start from the released weights. ``release-3`` is
release-2's lr schedule over 40,000 steps on a wider network, warm-started from release-2's
finished weights; ``release-4`` the same again on release 3's network with residual blocks,
warm-started from release 3 (stopped: the blocks did not pay for their cost); ``release-5``
the same schedule on release 3's network unchanged, warm-started from release 3 (released as
release 5); ``release-6`` that schedule once more, warm-started from release 5 (released as
release 6); ``release-7`` the same again, warm-started from release 6 (released as release
7); ``release-8`` the same again, warm-started from release 7; ``release-8-tail`` release 7
continued at the low learning rate its schedule ended with (an experiment on what a CPU-hour
buys); ``release-8-ctx`` release-8 with a checkerboard spatial context in the entropy model.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field

from bench.learned.qmap import DEFAULT_WEIGHTS

#: how training may compute the latent's rate (see ``Recipe.rate``)
RATE_MODES = ("noise", "rounded")

#: the smallest crop that bfloat16 autocast trains correctly (see ``Recipe.__post_init__``)
MIN_AUTOCAST_CROP = 64


@dataclass(frozen=True)
class Recipe:
    """A training recipe (see the module docstring); ``steps`` is the planned total."""

    name: str
    steps: int
    batch_size: int
    crop: int
    lr: float
    #: linear warm-up of the learning rate over the first steps (0: none)
    warmup: int = 0
    #: the learning rate is ``lr`` until ``decay_start * steps``, then decays by ``decay``
    decay: str = "step"  # "step": ×final_lr_factor at once; "cosine": smoothly to it
    decay_start: float = 0.9
    final_lr_factor: float = 0.1
    aux_lr: float = 1e-3
    clip: float = 1.0
    lambda_min: float = 0.001
    lambda_max: float = 0.1
    qmap_weights: dict = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    N: int = 96
    M: int = 128
    C: int = 32
    gains: int = 0
    #: residual blocks at each of the network's block places (0: none, releases 1–3)
    blocks: int = 0
    #: spatial context of the entropy model (0: none, releases 1–7; 1: checkerboard)
    context: int = 0
    #: bfloat16 autocast of the transforms (entropy models in float32) and channels-last
    autocast: bool = False
    channels_last: bool = False
    #: decay of the exponential moving average of the weights (0: none; export the live ones)
    ema: float = 0.0
    #: ``"memory"`` (images decoded once), ``"files"`` (read per crop) or ``"pack"``
    source: str = "files"
    #: when the state folder is empty, start from the package's released weights (widened
    #: when the recipe's network is wider: :mod:`bench.learned.widen`)
    warm_start: bool = False
    #: release the large weight tensors rounded to float16 (a network too large for a
    #: 16 MB checkpoint in float32); the codec computes in float32 from the rounded values
    half_weights: bool = False
    seed: int = 0
    #: ``y``'s rate in training: ``"noise"`` (additive uniform noise, releases 1–6) or
    #: ``"rounded"`` (the coded latent, straight-through; :meth:`RoiHyperprior.forward`)
    rate: str = "noise"

    def __post_init__(self) -> None:
        if self.rate not in RATE_MODES:
            raise ValueError(f"recipe {self.name}: rate must be one of {RATE_MODES}, got "
                             f"{self.rate!r}")
        if self.autocast and self.crop < MIN_AUTOCAST_CROP:
            # measured with torch 2.14 on CPU: the weight gradient of a bfloat16 5×5 stride-2
            # conv over a 1×1 input reads memory it never wrote (a different, often non-finite,
            # gradient on every call); hyper-analysis's last conv sees crop/32 pixels a side
            raise ValueError(f"recipe {self.name}: bfloat16 autocast needs crops of at least "
                             f"{MIN_AUTOCAST_CROP}² (got {self.crop}²): smaller crops give the "
                             f"hyper-analysis 1×1 inputs, whose bfloat16 weight gradients are "
                             f"garbage on CPU; use larger crops or autocast=False")

    def lr_at(self, step: int) -> float:
        """The learning rate of ``step``, from the planned total only."""
        factor = 1.0
        if self.warmup and step < self.warmup:
            factor = (step + 1) / self.warmup
        start = int(self.decay_start * self.steps)
        if step >= start:
            if self.decay == "step":
                factor = self.final_lr_factor
            else:
                t = min(1.0, (step - start) / max(1, self.steps - start))
                factor = self.final_lr_factor + (1 - self.final_lr_factor) * 0.5 * (
                    1 + math.cos(math.pi * t))
        return self.lr * factor

    def pixels_per_step(self) -> int:
        return self.batch_size * self.crop * self.crop

    def network(self) -> dict:
        """Constructor arguments of the network (without the entropy kind)."""
        out = {"N": self.N, "M": self.M, "C": self.C}
        if self.gains:
            out["gains"] = self.gains
        if self.blocks:
            out["blocks"] = self.blocks
        if self.context:
            out["context"] = self.context
        return out

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Recipe:
        data = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"recipe has unknown fields {sorted(unknown)}: written by a newer "
                             f"bench? Upgrade to resume it")
        return cls(**data)

    def describe(self) -> str:
        return (f"{self.name}: {self.steps} steps of {self.batch_size}×{self.crop}², lr "
                f"{self.lr:g} ({self.decay} decay from {self.decay_start:.0%} to "
                f"×{self.final_lr_factor:g}), λ {self.lambda_min:g}–{self.lambda_max:g}"
                + ("" if self.rate == "noise" else f", rate of the {self.rate} latent"))


# release-2's finished network widened to compressai's low-rate hyperprior width
# (N = 128, M = 192; 5.4 M parameters against 3.0 M): at its end the transforms bound the top
# end (benchmarks/learned_ceiling.py: ~33 dB with unquantized latents). Warm-starts from the
# release by function-preserving widening, then release-2's lr schedule (warm-up, cosine decay
# from 70 %) over 40,000 steps. Releases 4 and 5 train this schedule again.
_RELEASE_3 = Recipe("release-3", steps=40_000, batch_size=4, crop=256, lr=3e-4, warmup=500,
                    decay="cosine", decay_start=0.7, final_lr_factor=0.1,
                    lambda_min=0.0003, lambda_max=0.1,
                    qmap_weights={"uniform": 0.3, "roi": 0.35, "instances": 0.1,
                                  "gradient": 0.05, "blobs": 0.2},
                    N=128, M=192, gains=9, autocast=True, channels_last=True, ema=0.999,
                    source="memory", warm_start=True, half_weights=True)

RECIPES: dict[str, Recipe] = {r.name: r for r in (
    # What release 1 did (lr 1e-4 for its first ~1.5k steps aside): 8 crops of 128².
    Recipe("release-1", steps=11_500, batch_size=8, crop=128, lr=3e-4, decay="step",
           decay_start=0.9, final_lr_factor=0.1, source="pack"),
    # 48,000 steps of 4 crops of 256² = 192,000 crops of 256², the pixels of 768,000 crops
    # of 128² (8.3× release 1).
    Recipe("release-2", steps=48_000, batch_size=4, crop=256, lr=3e-4, warmup=500,
           decay="cosine", decay_start=0.7, final_lr_factor=0.1,
           lambda_min=0.0003, lambda_max=0.1,
           qmap_weights={"uniform": 0.3, "roi": 0.35, "instances": 0.1, "gradient": 0.05,
                         "blobs": 0.2},
           gains=9, autocast=True, channels_last=True, ema=0.999, source="memory",
           warm_start=True),
    _RELEASE_3,
    # release-3's finished network made deeper: one residual block after the analysis stages
    # at 1/4 and 1/8 and after each synthesis stage (6.9 M parameters against 5.4 M), since
    # release 3's transforms bound its top end (benchmarks/learned_ceiling.py: 34.1 dB with
    # unquantized latents at q = 1, 6 val pictures). Warm-starts from release 3 (the new
    # blocks start as the identity), then the same schedule again.
    dataclasses.replace(_RELEASE_3, name="release-4", blocks=1),
    # release-4's schedule on release 3's network, warm-started from release 3: release-4's
    # blocks cost 27 % more per step and, at equal steps (12,567), led this network by only
    # 0.2 % / 0.7 % of rate, a lead that had shrunk from 0.6 % / 1.0 % at step 6,000, with the
    # top end unchanged, and coded 1.5x slower (model card, "Release-4 against its
    # control"). Its first 12,567 steps of ggm are that control's, run with this recipe
    # under another name.
    dataclasses.replace(_RELEASE_3, name="release-5"),
    # release-5's schedule once more, warm-started from release 5: the CPU campaign while no
    # GPU is lent. Each such run so far lowered the curve by 6-8 % of rate without steepening
    # it (release 3 -> 5, 79 pictures), so it is expected to improve the rate, not to reach
    # the quality targets, which need more capacity (model card, "What release 5 says about
    # the next one").
    dataclasses.replace(_RELEASE_3, name="release-6"),
    # release-6's schedule once more, warm-started from release 6: the CPU campaign while no
    # GPU is lent. The same schedule has lowered the curve by less each time (release 3 -> 5:
    # 6-8 % of rate, 5 -> 6: 3-6 %, 79 pictures) without steepening it, so it is expected to
    # lower the rate by a few percent more, not to reach the quality targets (model card,
    # "What release 6 says about the next one").
    dataclasses.replace(_RELEASE_3, name="release-7"),
    # release-7's schedule once more, warm-started from release 7: the CPU campaign while no
    # GPU is lent, for the few percent of rate each run of it has bought (release 3 -> 5:
    # 6-8 %, 5 -> 6: 3-6 %, 6 -> 7: see the model card), not for the quality targets.
    dataclasses.replace(_RELEASE_3, name="release-8"),
    # An experiment on how the CPU is best spent: release 7 continued at the low end of its
    # own schedule (3e-5, then a cosine to 1e-5 over the last 30 %), without the 28,000
    # steps at 3e-4 that each release-N run spends before its decay. Releases 6 and 7 made
    # most of their gain in that decay (release-7 at 28,000 steps: -1.0 to -1.8 % of rate,
    # at 40,000: -3.1 to -3.8 %); if the low rate alone keeps buying rate, it buys it in a
    # fraction of release-8's steps. Run on gaussian-roi (2026-12-07): -0.8 % / -0.7 % of rate
    # after its 12,000 steps (-0.4 % / -0.6 % at half way), less per step than release-7's
    # whole run bought, so the campaign stays on release-8 (model card, "Release-8 campaign
    # and its low-rate tail").
    dataclasses.replace(_RELEASE_3, name="release-8-tail", steps=12_000, lr=3e-5,
                        final_lr_factor=1 / 3),
    # release-8 with a checkerboard spatial context in the entropy model (He et al., CVPR
    # 2021): every release so far coded each latent from the hyperprior alone. Warm-starts
    # from release 7 with the context convolution at zero (the same output at step 0), then
    # release-8's schedule, so that at equal steps it is release-8's A/B twin: the same
    # batches, the same noise, one difference. At ggm's 4,168 steps it needed 1.5 % / 0.8 %
    # less rate than release-8 (uniform PSNR / ROI-mode ROI-PSNR) for 4 % more time per step,
    # so the CPU campaign moved to it on 2026-12-07 (model card, "Release-8-ctx: a
    # checkerboard spatial context").
    dataclasses.replace(_RELEASE_3, name="release-8-ctx", context=1),
)}


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"no recipe {name!r}; known: {', '.join(RECIPES)}") from None
