"""The learned GG shape ``beta``: parametrization and the three sharing modes.

``beta = clamp(beta_min + softplus(raw), max=beta_max)`` keeps the shape positive and
above ``beta_min`` with a smooth, unconstrained parameter ``raw`` (Zhang et al. 2024 learn
the shape likewise, either globally, per channel or predicted per element). Modes:

* ``"model"``: one learned ``beta`` for the whole latent;
* ``"channel"``: one learned ``beta`` per latent channel (dimension 1);
* ``"element"``: the caller (e.g. the hyper-decoder) supplies ``raw`` for every element.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["BETA_MODES", "GGShape", "beta_from_raw", "raw_from_beta"]

BETA_MODES = ("model", "channel", "element")


def beta_from_raw(raw: Tensor, beta_min: float, beta_max: float) -> Tensor:
    """``clamp(beta_min + softplus(raw), max=beta_max)``."""
    return (beta_min + F.softplus(raw)).clamp(max=beta_max)


def raw_from_beta(beta: Tensor | float, beta_min: float) -> Tensor:
    """Inverse of :func:`beta_from_raw` inside the range: ``log(expm1(beta - beta_min))``.

    ``beta == beta_min`` maps to ``-inf`` (softplus(-inf) = 0), which is exact. A floating
    tensor keeps its dtype (float64 shapes stay exact); anything else becomes the default dtype.
    """
    if not (isinstance(beta, Tensor) and beta.is_floating_point()):
        beta = torch.as_tensor(beta, dtype=torch.get_default_dtype())
    return torch.log(torch.expm1(beta - beta_min))


class GGShape(nn.Module):
    """Holds or receives the raw shape parameters and returns broadcastable ``beta``.

    Args:
        mode: one of :data:`BETA_MODES`.
        channels: number of latent channels (required for ``"channel"``).
        beta_min, beta_max: the clamp range of ``beta``.
        beta_init: initial shape of the learned parameter (ignored for ``"element"``).
    """

    def __init__(
        self,
        mode: str = "model",
        channels: int | None = None,
        beta_min: float = 0.5,
        beta_max: float = 4.0,
        beta_init: float = 1.5,
    ) -> None:
        super().__init__()
        if mode not in BETA_MODES:
            raise ValueError(f"beta mode must be one of {BETA_MODES}, got {mode!r}")
        if not beta_min < beta_init <= beta_max:
            raise ValueError(f"beta_init {beta_init} outside ({beta_min}, {beta_max}]")
        self.mode = mode
        self.beta_min = float(beta_min)
        self.beta_max = float(beta_max)
        self.raw: nn.Parameter | None = None
        if mode == "channel":
            if channels is None or channels < 1:
                raise ValueError("beta mode 'channel' needs channels >= 1")
            size = int(channels)
        else:
            size = 1
        if mode != "element":
            init = math.log(math.expm1(beta_init - self.beta_min))
            self.raw = nn.Parameter(torch.full((size,), init))

    def forward(self, like: Tensor, beta_raw: Tensor | None = None) -> Tensor:
        """Return ``beta`` broadcastable against ``like`` (an ``N x C x ...`` tensor).

        ``beta_raw`` is required in ``"element"`` mode (same shape as ``like``) and
        rejected otherwise, so a wrong call fails loudly instead of silently ignoring it.
        """
        if self.mode == "element":
            if beta_raw is None:
                raise ValueError("beta mode 'element' needs beta_raw from the caller")
            return beta_from_raw(beta_raw, self.beta_min, self.beta_max)
        if beta_raw is not None:
            raise ValueError(f"beta_raw is only accepted in 'element' mode, not {self.mode!r}")
        beta = beta_from_raw(self.raw, self.beta_min, self.beta_max)
        if self.mode == "channel":
            if like.dim() < 2 or like.size(1) != beta.numel():
                raise ValueError(f"expected {beta.numel()} channels in dim 1, got {like.shape}")
            return beta.reshape(1, -1, *([1] * (like.dim() - 2)))
        return beta

    def extra_repr(self) -> str:
        """Configuration shown by ``repr(module)``."""
        return f"mode={self.mode!r}, beta=[{self.beta_min}, {self.beta_max}]"
