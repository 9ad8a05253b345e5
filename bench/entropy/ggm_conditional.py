"""Generalized Gaussian conditional entropy model (GGM) with a learned shape.

Drop-in counterpart of compressai's ``GaussianConditional`` (Ballé et al. 2018, "Variational
image compression with a scale hyperprior"; Minnen et al. 2018, "Joint autoregressive and
hierarchical priors for learned image compression") where the Gaussian is replaced by a
generalized Gaussian with mean ``mu``, scale ``alpha`` and shape ``beta`` (Zhang et al. 2024,
"Generalized Gaussian Model for Learned Image Compression"; density of Nadarajah 2005).
It subclasses compressai's ``EntropyModel`` and keeps its quantization, likelihood floor and
entropy-coder plumbing; only the distribution, the scale bound and the tables differ.

Pieces (one module each): the distribution maths and custom autograd
(:mod:`~bench.entropy.gg_math`), the shape parametrization (:mod:`~bench.entropy.shape`),
the shape-dependent scale bound (:mod:`~bench.entropy.bounds`), the table grid
(:mod:`~bench.entropy.tables`) and the rANS calls (:mod:`~bench.entropy.rans`).
"""

from __future__ import annotations

from typing import Any

import torch
from compressai.entropy_models import EntropyModel
from torch import Tensor

from .bounds import DynamicScaleBound
from .gg_math import gg_bin_mass
from .rans import MAX_ABS_SYMBOL, RansTables
from .shape import GGShape
from .tables import TableGrid, build_cdf_tables

__all__ = ["GeneralizedGaussianConditional"]

_TABLE_BUFFERS = ("_quantized_cdf", "_cdf_start", "_cdf_length", "_offset")


def ste_round(inputs: Tensor, means: Tensor | None = None) -> Tensor:
    """Zero-centred rounding ``round(y - mu) + mu`` with a straight-through gradient.

    The value is bit-identical to the decoder's ``round(y - mu) + mu``; the gradient is the
    identity for ``y`` and zero for ``mu`` (``round`` treated as the identity). The one
    definition of the rounding both the entropy model and the learned networks train with.
    """
    centred = inputs - means if means is not None else inputs
    rounded = torch.round(centred) + means if means is not None else torch.round(centred)
    return rounded.detach() + (inputs - inputs.detach())


class GeneralizedGaussianConditional(EntropyModel):
    """Conditional GG entropy model: ``y ~ GG(mu, alpha, beta)`` convolved with U(-1/2, 1/2).

    Same call pattern as ``GaussianConditional``: ``forward`` for training, ``likelihood``,
    ``build_indexes``, ``compress``/``decompress`` and ``update`` to build the tables. The
    ``scales`` argument everywhere is the GG scale ``alpha`` (for ``beta = 2``,
    ``alpha = sqrt(2) * sigma``).

    Args:
        beta_mode: ``"model"`` (one learned shape), ``"channel"`` (one per channel) or
            ``"element"`` (the caller passes ``beta_raw`` per element); see :class:`GGShape`.
        channels: number of latent channels, required for ``"channel"``.
        beta_init: initial learned shape.
        beta_min, beta_max: ``beta = clamp(beta_min + softplus(raw), max=beta_max)``;
            default range [0.5, 4] (0.5 is already very heavy-tailed; 4 nearly uniform).
        gaussian_scale_bound: Gaussian ``sigma`` bound whose zero-bin probability defines
            the dynamic scale bound (compressai's 0.11).
        alpha_levels, beta_levels, max_std, scale_rounding: coding table grid and how a
            scale maps onto it (:class:`TableGrid`; ``"upper"`` neighbour as compressai, or
            ``"nearest"`` in log space).
        tail_mass, min_symbol_prob, max_half_width: table extent
            (:func:`~bench.entropy.tables.table_half_widths`).
        ste_outputs: in training, return straight-through rounded values
            ``round(y - mu) + mu`` (the reconstruction path) while the rate uses additive
            noise; if False return the noisy values like compressai.
        likelihood_bound, entropy_coder, entropy_coder_precision: as ``EntropyModel``.
    """

    _quantized_cdf: Tensor
    _cdf_start: Tensor
    _cdf_length: Tensor
    _offset: Tensor

    def __init__(
        self,
        beta_mode: str = "model",
        channels: int | None = None,
        *,
        beta_init: float = 1.5,
        beta_min: float = 0.5,
        beta_max: float = 4.0,
        gaussian_scale_bound: float = 0.11,
        alpha_levels: int = 64,
        beta_levels: int = 19,
        max_std: float = 256.0,
        scale_rounding: str = "upper",
        tail_mass: float = 1e-9,
        min_symbol_prob: float = 1e-6,
        max_half_width: int = 2048,
        ste_outputs: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.gg_shape = GGShape(beta_mode, channels, beta_min, beta_max, beta_init)
        self.scale_bound = DynamicScaleBound(beta_min, beta_max, gaussian_scale_bound)
        self.grid = TableGrid.create(self.scale_bound, beta_levels, alpha_levels, max_std,
                                     scale_rounding)
        self.tail_mass = float(tail_mass)
        self.min_symbol_prob = float(min_symbol_prob)
        self.max_half_width = int(max_half_width)
        self.ste_outputs = bool(ste_outputs)
        self.register_buffer("_cdf_start", torch.LongTensor())
        self._rans: RansTables | None = None

    # ------------------------------------------------------------------ parameters
    @property
    def beta_mode(self) -> str:
        """The shape sharing mode (``"model"``, ``"channel"`` or ``"element"``)."""
        return self.gg_shape.mode

    def beta(self, like: Tensor, beta_raw: Tensor | None = None) -> Tensor:
        """The shape ``beta``, broadcastable against ``like`` (see :class:`GGShape`)."""
        return self.gg_shape(like, beta_raw)

    def bounded_scales(self, scales: Tensor, beta: Tensor) -> Tensor:
        """``max(alpha, bound(beta))``, the same bound for training and for table indexes."""
        return self.scale_bound(scales, beta)

    # ------------------------------------------------------------------ training
    def likelihood(
        self,
        inputs: Tensor,
        scales: Tensor,
        means: Tensor | None = None,
        beta_raw: Tensor | None = None,
    ) -> Tensor:
        """Bin mass ``F(y - mu + 1/2) - F(y - mu - 1/2)`` with the likelihood floor applied."""
        beta = self.beta(inputs, beta_raw)
        return self._likelihood(inputs, scales, means, beta)

    def _likelihood(
        self, inputs: Tensor, scales: Tensor, means: Tensor | None, beta: Tensor
    ) -> Tensor:
        """:meth:`likelihood` for an explicit (already constrained) ``beta``."""
        values = inputs - means if means is not None else inputs
        alpha = self.bounded_scales(scales, beta)
        mass = gg_bin_mass(values, alpha, beta.to(values.dtype))
        if self.use_likelihood_bound:
            mass = self.likelihood_lower_bound(mass)
        return mass

    ste_round = staticmethod(ste_round)

    def forward(
        self,
        inputs: Tensor,
        scales: Tensor,
        means: Tensor | None = None,
        beta_raw: Tensor | None = None,
        training: bool | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Return ``(y_hat, likelihoods)``.

        Training: the likelihood of ``y + U(-1/2, 1/2)`` (rate proxy) and, for the
        reconstruction path, straight-through ``round(y - mu) + mu`` (or the noisy values if
        ``ste_outputs`` is False). Evaluation: both use ``round(y - mu) + mu``.
        """
        if training is None:
            training = self.training
        beta = self.beta(inputs, beta_raw)
        if not training:
            outputs = self.quantize(inputs, "dequantize", means)
            return outputs, self._likelihood(outputs, scales, means, beta)
        noisy = self.quantize(inputs, "noise")
        likelihood = self._likelihood(noisy, scales, means, beta)
        outputs = self.ste_round(inputs, means) if self.ste_outputs else noisy
        return outputs, likelihood

    # ------------------------------------------------------------------ coding
    def build_indexes(self, scales: Tensor, beta_raw: Tensor | None = None) -> Tensor:
        """Table index per element: nearest grid shape, upper or nearest grid scale (int32).

        The scale is first bounded exactly as in :meth:`likelihood`.
        """
        with torch.no_grad():
            beta = self.beta(scales, beta_raw)
            alpha = self.bounded_scales(scales, beta)
            index = self.grid.index(alpha, beta)
        return index.expand(scales.shape).contiguous()

    def table_parameters(self, indexes: Tensor) -> tuple[Tensor, Tensor]:
        """The (alpha, beta) of the tables ``indexes`` point to (float64), e.g. for rates."""
        flat = indexes.long().cpu()
        alpha = self.grid.table_alpha()[flat].to(indexes.device)
        beta = self.grid.table_beta()[flat].to(indexes.device)
        return alpha, beta

    def update(self, force: bool = False) -> bool:
        """Build the quantized CDF tables (if missing or ``force``); True if rebuilt.

        Deterministic: the same configuration gives bit-identical tables in every process
        on the same platform; they are also saved in the ``state_dict``.
        """
        if self._offset.numel() > 0 and not force:
            return False
        tables = build_cdf_tables(
            self.grid,
            self.tail_mass,
            self.max_half_width,
            self.min_symbol_prob,
            self.entropy_coder_precision,
        )
        device = self._offset.device
        self._quantized_cdf = tables.cdf.to(device)
        self._cdf_start = tables.start.to(device)
        self._cdf_length = tables.length.to(device)
        self._offset = tables.offset.to(device)
        self._rans = None
        return True

    @property
    def table_nbytes(self) -> int:
        """Bytes held by the CDF tables and their index arrays."""
        return sum(
            getattr(self, name).numel() * getattr(self, name).element_size()
            for name in _TABLE_BUFFERS
        )

    def _coder_tables(self) -> RansTables:
        """The tables in the coder's format (rebuilt after ``update``/``load_state_dict``)."""
        if self._offset.numel() == 0:
            raise ValueError("Uninitialized CDFs. Run update() first")
        if self._offset.numel() != self.grid.num_tables:
            raise ValueError(
                f"{self._offset.numel()} tables loaded, the grid has {self.grid.num_tables}"
            )
        if self._rans is None:
            self._rans = RansTables(
                self._quantized_cdf, self._cdf_start, self._cdf_length, self._offset
            )
        return self._rans

    def compress(
        self, inputs: Tensor, indexes: Tensor, means: Tensor | None = None, encoder: object = None
    ) -> list[bytes] | None:
        """Entropy-code ``round(y - mu)`` per batch element; returns one bytes per element.

        With ``encoder`` (a compressai ``BufferedRansEncoder``) the symbols are appended to it
        instead, for one string shared with other parts (returns None).
        """
        if inputs.dim() < 2:
            raise ValueError("Invalid `inputs` size. Expected a tensor with at least 2 dimensions.")
        if inputs.shape != indexes.shape:
            raise ValueError("`inputs` and `indexes` should have the same size.")
        centred = torch.round(inputs - means if means is not None else inputs)
        max_abs = float(centred.abs().max()) if centred.numel() else 0.0
        if not max_abs <= MAX_ABS_SYMBOL:  # also catches NaN and inf
            raise ValueError(f"symbols must be finite with |y - mu| <= {MAX_ABS_SYMBOL}")
        symbols = centred.int().reshape(inputs.size(0), -1)
        strings = self._coder_tables().encode(
            encoder or self.entropy_coder._encoder,
            symbols,
            indexes.reshape(inputs.size(0), -1),
            max_abs_symbol=int(max_abs),
        )
        return None if encoder is not None else strings

    def decompress(
        self,
        strings: list[bytes],
        indexes: Tensor,
        dtype: torch.dtype = torch.float,
        means: Tensor | None = None,
        decoder: object = None,
    ) -> Tensor:
        """Decode ``strings`` with the same ``indexes`` (and ``means``) as the encoder.

        With ``decoder`` (a compressai ``RansDecoder`` whose stream is set) ``strings`` is
        ignored and the symbols are the stream's next ones.
        """
        if decoder is not None:
            symbols = self._coder_tables().read(decoder, indexes)
            return self.dequantize(symbols.to(indexes.device), means, dtype)
        if not isinstance(strings, (tuple, list)) or len(strings) != indexes.size(0):
            raise ValueError("Invalid strings or indexes parameters")
        if indexes.dim() < 2:
            raise ValueError("Invalid `indexes` size. Expected a tensor with at least 2 dims.")
        flat = indexes.reshape(indexes.size(0), -1)
        symbols = self._coder_tables().decode(self.entropy_coder._decoder, list(strings), flat)
        symbols = symbols.reshape(indexes.shape).to(indexes.device)
        return self.dequantize(symbols, means, dtype)

    # ------------------------------------------------------------------ state
    def _load_from_state_dict(
        self, state_dict: dict, prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        """Resize the (initially empty) table buffers to the saved ones before loading."""
        for name in _TABLE_BUFFERS:
            key = prefix + name
            if key in state_dict:
                saved = state_dict[key]
                current = getattr(self, name)
                setattr(self, name, torch.empty_like(saved, device=current.device))
        self._rans = None
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
