"""The quality-map conditioned mean-scale hyperprior behind ``ggm`` and ``gaussian-roi``.

Structure (Ballé et al., ICLR 2018 "Variational image compression with a scale hyperprior";
Minnen et al., NeurIPS 2018 mean-scale prior; SFT conditioning after Song et al., ICCV 2021):

* analysis ``g_a``: ``[image, q]`` (4 channels) → 4 stride-2 5×5 convolutions (N, N, N, M
  channels) with GDN, each GDN followed by an SFT from the full-resolution quality map;
  ``y`` is at 1/16 resolution;
* hyper-analysis ``h_a``: 3×3 conv, two stride-2 5×5 convs → ``z`` (N channels, 1/64),
  coded with compressai's factorized ``EntropyBottleneck``;
* hyper-synthesis ``h_s``: two stride-2 transposed convs and a 3×3 conv, cropped to the
  size of ``y``, concatenated with the latent quality condition, then two 1×1 convs → the
  entropy parameters: ``(mu, alpha, beta_raw)`` for the GGM, ``(mu, sigma)`` for the Gaussian;
* synthesis ``g_s``: SFT on ``y_hat``, 4 stride-2 transposed convs with IGDN, each IGDN
  followed by an SFT; the condition comes only from the latent-resolution quality map that
  the bitstream carries.

Rate control by gain vectors (release 2, ``gains > 0``; after Cui et al., CVPR 2021,
"Asymmetric gained deep image compression with continuous rate adaptation"): ``gains``
per-channel log-gain vectors at evenly spaced quality levels, interpolated linearly in q
(so the gain is log-linear between anchors), scale each latent position by ``g(q_lat)``
before quantization; a second set of vectors ``g'(q_lat)`` (initialized to ``1/g``) scales
the dequantized latent before synthesis. The hyper-decoder predicts mean and scale for the
un-gained latent and both are multiplied by the same gain, so a larger gain is a finer
quantizer and every latent position has its own step, driven by the quality map the
bitstream already carries. With ``gains = 0`` the network is release 1's, bit for bit.

Depth (release 4, ``blocks > 0``): ``blocks`` residual blocks (two 3×3 convolutions and a
skip; :class:`~bench.learned.layers.ResidualBlock`) after the analysis stages at 1/4 and 1/8
resolution and after every synthesis stage (1/8, 1/4, 1/2), as Cheng et al. (CVPR 2020)
place them between the stride-2 stages. Release 3's transforms bound its top end
(``benchmarks/learned_ceiling.py``: 34.1 dB with unquantized latents at q = 1 on 6 val
pictures, 0.5 dB above the coded PSNR); one block at each place costs about 23 % more per
bfloat16 training step on one core of an Intel Xeon with AMX (eager; 27 % compiled; measured
2026-12-05), most of it the synthesis block at 1/2 resolution (the four others together
add 6 %). A block starts as the identity, so a deeper network warm-starts from a shallower
one without changing its output. With ``blocks = 0`` the network is release 3's, bit for bit.

Spatial context (``context = 1``; after He et al., CVPR 2021, "Checkerboard context model
for efficient learned image compression"): the latent positions split into a checkerboard
of anchors (``(i + j)`` even) and the rest. Anchors get their entropy parameters from the
hyperprior alone; every other position also sees a 5×5 convolution of the anchors' coded
values (un-gained, zero at non-anchors), added to the head's hidden layer, which is the
concatenation-then-1×1 of the paper's entropy-parameter network written as a sum. The
encoder codes all anchors, then the rest; the decoder decodes the anchors, computes the
context from them and decodes the rest: two passes, not one per position as in Minnen et
al.'s serial context model. Coding computes the context convolution only at the non-anchors
and from the taps that meet an anchor (:func:`checkerboard_context`, a quarter of the dense
convolution's work; training keeps the dense one). The context convolution starts at zero,
so a model with context warm-starts from one without (:mod:`bench.learned.widen`) unchanged
at step 0. With ``context = 0`` the network is release 3's, bit for bit.

Coding tables: both entropy models map a predicted scale to the nearest table scale in log
space (compressai's default is the upper neighbour, which costs a few percent of rate; see
:mod:`bench.entropy.tables`); the Gaussian's table is compressai's 64 scales, the GGM's the
same scales (in standard deviation) for each of its 19 shapes.

Quantization: ``y_hat = round(y - mu) + mu`` (straight-through in training, the rate from
additive uniform noise), identical for both entropy models; ``z`` as compressai's
``EntropyBottleneck`` (noise in training, median-centred rounding when coding).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# compressai first through bench._compressai, which silences torch_geometric's jit warning
import bench._compressai  # noqa: F401

# isort: split
from compressai.entropy_models import EntropyBottleneck
from compressai.layers import GDN
from compressai.models import CompressionModel
from torch import Tensor, nn

from bench.entropy import (
    GeneralizedGaussianConditional,
    NearestScaleGaussianConditional,
    ste_round,
)
from bench.learned import ENTROPY_KINDS
from bench.learned.layers import (
    SFT,
    DecoderCondition,
    EncoderCondition,
    LatentCondition,
    ResidualBlock,
    act,
    conv,
    deconv,
    single_thread,
)
from bench.learned.qmap import LATENT_STRIDE
from bench.learned.recipe import RATE_MODES
from bench.learned.stream import check_stream_end, read_bottleneck, write_bottleneck


class RoiHyperprior(CompressionModel):
    """Quality-map conditioned mean-scale hyperprior; ``entropy`` is ``"ggm"`` or ``"gaussian"``.

    Args:
        entropy: latent entropy model.
        N: channels of the transforms and of ``z``.
        M: channels of ``y``.
        C: channels of the quality-map condition features.
        gains: gain-vector anchor levels (0: no gain vectors).
        blocks: residual blocks at each place of :data:`ANALYSIS_BLOCKS` and
            :data:`SYNTHESIS_BLOCKS` (0: none).
        context: 0 (none) or 1 (checkerboard spatial context; see the module doc).
    """

    #: analysis stages (0: 1/2, 1: 1/4, 2: 1/8 resolution) followed by residual blocks
    ANALYSIS_BLOCKS = (1, 2)
    #: synthesis stages (0: 1/8, 1: 1/4, 2: 1/2 resolution) followed by residual blocks
    SYNTHESIS_BLOCKS = (0, 1, 2)

    #: Initial log-gain spread over q in [0, 1] (a factor e**GAIN_INIT_SPAN ≈ 3.2).
    GAIN_INIT_SPAN = 0.5 * math.log(10.0)

    def __init__(self, entropy: str = "ggm", N: int = 96, M: int = 128, C: int = 32,
                 gains: int = 0, blocks: int = 0, context: int = 0) -> None:
        super().__init__()
        if entropy not in ENTROPY_KINDS:
            raise ValueError(f"entropy must be one of {ENTROPY_KINDS}, got {entropy!r}")
        if gains == 1 or gains < 0:
            raise ValueError(f"gains must be 0 (none) or at least 2 levels, got {gains}")
        self.entropy, self.N, self.M, self.C = entropy, int(N), int(M), int(C)
        if blocks < 0:
            raise ValueError(f"blocks must be 0 (none) or more, got {blocks}")
        self.gains, self.blocks = int(gains), int(blocks)
        if context not in (0, 1):
            raise ValueError(f"context must be 0 (none) or 1 (checkerboard), got {context}")
        self.context = int(context)
        if self.gains:
            levels = torch.linspace(0.0, 1.0, self.gains)
            init = (self.GAIN_INIT_SPAN * (levels - 0.5))[:, None].expand(-1, M).clone()
            self.log_gain = nn.Parameter(init)
            self.log_inv_gain = nn.Parameter(-init)
        # analysis
        self.enc_cond = EncoderCondition(C)
        self.a_convs = nn.ModuleList([conv(4, N), conv(N, N), conv(N, N), conv(N, M)])
        self.a_gdns = nn.ModuleList([GDN(N) for _ in range(3)])
        self.a_sfts = nn.ModuleList([SFT(N, C) for _ in range(3)])
        # empty without blocks (releases 1–3): no entries in the state dict
        self.a_blocks = nn.ModuleDict({str(i): _blocks(N, self.blocks)
                                       for i in self.ANALYSIS_BLOCKS if self.blocks})
        # hyperprior
        self.h_a = nn.Sequential(conv(M, N, 3, 1), act(), conv(N, N), act(), conv(N, N))
        self.h_s = nn.Sequential(deconv(N, N), act(), deconv(N, N), act(), conv(N, N, 3, 1), act())
        self.n_params = 3 if entropy == "ggm" else 2
        self.head = nn.Sequential(nn.Conv2d(N + C, 2 * N, 1), act(),
                                  nn.Conv2d(2 * N, self.n_params * M, 1))
        if self.context:
            # into the head's hidden layer; zero at first: the hyperprior's parameters unchanged
            self.ctx = nn.Conv2d(M, 2 * N, 5, padding=2)
            nn.init.zeros_(self.ctx.weight)
            nn.init.zeros_(self.ctx.bias)
        self.entropy_bottleneck = EntropyBottleneck(N)
        if entropy == "ggm":
            self.conditional = GeneralizedGaussianConditional("element", scale_rounding="nearest")
        else:
            self.conditional = NearestScaleGaussianConditional(None)
        # synthesis
        self.lat_cond = LatentCondition(C)
        self.dec_cond = DecoderCondition(C)
        self.s_sft_in = SFT(M, C)
        self.s_convs = nn.ModuleList([deconv(M, N), deconv(N, N), deconv(N, N), deconv(N, 3)])
        self.s_gdns = nn.ModuleList([GDN(N, inverse=True) for _ in range(3)])
        self.s_sfts = nn.ModuleList([SFT(N, C) for _ in range(3)])
        # empty without blocks (releases 1–3): no entries in the state dict
        self.s_blocks = nn.ModuleDict({str(i): _blocks(N, self.blocks)
                                       for i in self.SYNTHESIS_BLOCKS if self.blocks})

    #: The analysis and synthesis transforms with their condition nets: what
    #: :meth:`store_transforms` changes. Not the hyper-transforms, the latent condition and
    #: the head, which give the entropy parameters (the rANS tables).
    TRANSFORM_PARTS = ("enc_cond", "a_convs", "a_gdns", "a_sfts", "a_blocks",
                       "dec_cond", "s_sft_in", "s_convs", "s_gdns", "s_sfts", "s_blocks")

    def store_transforms(self, memory_format: torch.memory_format) -> RoiHyperprior:
        """Store ``g_a``'s and ``g_s``'s weights in ``memory_format``, in place; returns self.

        ``torch.channels_last`` (NHWC) is the coding layout: PyTorch's CPU convolutions
        (oneDNN) run faster that way (release-3 weights, 640×480 at q5, one thread: decode
        1.47×, encode 1.13–1.20×, ``benchmarks/learned_memory_format.py``), with another
        summation order, so the reconstruction's floats change in the last bits.
        :func:`bench.learned.checkpoint.load_model` gives it to every released model from
        codec version 4 (release 5) on; training keeps the default layout
        (``torch.contiguous_format``). The entropy parameters are untouched either way:
        ``g_a`` hands ``y`` on in the default layout.
        """
        for name in self.TRANSFORM_PARTS:
            getattr(self, name).to(memory_format=memory_format)
        return self

    # ------------------------------------------------------------------ transforms
    def g_a(self, x: Tensor, q: Tensor) -> Tensor:
        conds = self.enc_cond(q)
        h = torch.cat([x, q], dim=1)
        for i in range(3):
            h = self.a_sfts[i](self.a_gdns[i](self.a_convs[i](h)), conds[i])
            if str(i) in self.a_blocks:
                h = self.a_blocks[str(i)](h)
        # y in the default layout whatever the weights' (store_transforms), as
        # before (a 1×1 latent keeps its strides, but both layouts are one there); the
        # entropy parameters come from z_hat, rebuilt alike by the encoder and the decoder
        return self.a_convs[3](h).contiguous()

    def g_s(self, y_hat: Tensor, c_lat: Tensor) -> Tensor:
        conds = self.dec_cond(c_lat)
        h = self.s_sft_in(y_hat, c_lat)
        for i in range(3):
            h = self.s_sfts[i](self.s_gdns[i](self.s_convs[i](h)), conds[i])
            if str(i) in self.s_blocks:
                h = self.s_blocks[str(i)](h)
        return self.s_convs[3](h)

    def entropy_parameters(self, z_hat: Tensor, q_lat: Tensor, gain: Tensor | None = None,
                           dtype: torch.dtype = torch.float32) -> tuple[Tensor, list[Tensor]]:
        """Latent condition features (float32) and the hyperprior's entropy parameters (each
        ``B×M×h×w``, in ``dtype``): every position's for a model without context, the
        anchors' for a checkerboard model (:meth:`latent_parameters` gives the rest).

        With ``gain``, mean and scale are those of the gained latent ``y·g``. ``dtype``
        float64 runs the hyper-synthesis, the condition and the head in float64 (bitstream
        format 3): see :meth:`compress`.
        """
        c_lat, hidden = self._hyper_hidden(z_hat, q_lat, dtype)
        return c_lat, self._head_params(hidden, gain, dtype)

    def _hyper_hidden(self, z_hat: Tensor, q_lat: Tensor, dtype: torch.dtype
                      ) -> tuple[Tensor, Tensor]:
        """``(c_lat, hidden)``: the condition features and the head's first layer's output
        (before its activation), what both checkerboard passes share."""
        run = _call64 if dtype == torch.float64 else nn.Module.__call__
        c_lat = run(self.lat_cond, q_lat)
        h = run(self.h_s, z_hat)[..., : q_lat.shape[-2], : q_lat.shape[-1]]
        hidden = run(self.head[0], torch.cat([h, c_lat], dim=1))
        if dtype == torch.float64:
            c_lat = c_lat.float()  # the synthesis computes in float32
        return c_lat, hidden

    def _head_params(self, hidden: Tensor, gain: Tensor | None, dtype: torch.dtype,
                     context: Tensor | None = None) -> list[Tensor]:
        """The entropy parameters from the head's hidden layer, plus the spatial context of
        ``context`` (the anchors' un-gained coded values, zero elsewhere) when given."""
        run = _call64 if dtype == torch.float64 else nn.Module.__call__
        if context is not None:
            if torch.is_grad_enabled():  # training (small crops, compiled): the dense one
                hidden = hidden + run(self.ctx, context)
            else:  # coding, evaluation: only where it is used (float64 for a float64 head)
                weight, bias = self.ctx.weight, self.ctx.bias
                if dtype == torch.float64:
                    weight, bias = weight.double(), bias.double()
                hidden = hidden + checkerboard_context(context, weight, bias)
        elif self.context:  # the activation works in place; the second pass needs hidden
            hidden = hidden.clone()
        out = run(self.head[2], run(self.head[1], hidden))
        params = [p.to(dtype) for p in out.chunk(self.n_params, dim=1)]
        if gain is not None:
            params[0], params[1] = params[0] * gain, params[1] * gain
        return params

    def latent_parameters(self, y: Tensor, z_hat: Tensor, q_lat: Tensor,
                          gains: tuple[Tensor, Tensor] | None,
                          dtype: torch.dtype = torch.float32, autocast: bool = False
                          ) -> tuple[Tensor, Tensor, list[Tensor]]:
        """``(y, c_lat, params)``: the analysis output ``y`` gained (the coded domain), and
        its entropy parameters: the hyperprior's, and for a checkerboard model those of the
        non-anchors from the anchors' coded values ``round(y - mu) + mu`` (straight-through
        in training) as the decoder will have them.

        ``autocast`` (training): the hyper-synthesis and the head in bfloat16, the gain and
        the rounding in float32, as :meth:`forward` runs them.
        """
        device = z_hat.device.type
        with torch.autocast(device, dtype=torch.bfloat16, enabled=autocast):
            c_lat, hidden = self._hyper_hidden(z_hat, q_lat, dtype)
            params = self._head_params(hidden, gains[0] if gains else None, dtype)
        with torch.autocast(device, enabled=False):
            if gains:
                y = y * gains[0]
            if not self.context:
                return y, c_lat, params
            anchors = checkerboard_anchors(y)
            y_anchor = torch.where(anchors, ste_round(y, params[0]), 0.0)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=autocast):
            second = self._context_params(hidden, gains, dtype, y_anchor)
        return y, c_lat, [torch.where(anchors, a, b)
                          for a, b in zip(params, second, strict=True)]

    def _context_params(self, hidden: Tensor, gains: tuple[Tensor, Tensor] | None,
                        dtype: torch.dtype, y_anchor: Tensor) -> list[Tensor]:
        """The second pass: entropy parameters from the head's ``hidden`` layer and the
        anchors' coded values ``y_anchor`` (gained, zero at the other positions), divided by
        their gain for the context convolution (the hyperprior predicts the un-gained
        latent), in float64 when the head runs in float64, else in float32."""
        if gains:
            y_anchor = y_anchor / gains[0]
        context = y_anchor.to(torch.float64) if hidden.dtype == torch.float64 \
            else y_anchor.float()
        return self._head_params(hidden, gains[0] if gains else None, dtype, context)

    def gain_maps(self, q_lat: Tensor, dtype: torch.dtype = torch.float32
                  ) -> tuple[Tensor, Tensor] | None:
        """``(g, g')`` at every latent position (each ``B×M×h×w``), or None without gains.

        Hat-function weights over the ``gains`` anchor levels interpolate the log-gains
        linearly in ``q``; computed elementwise in ``dtype`` (float32, or float64 for
        bitstream format 3), so encoder and decoder agree.
        """
        if not self.gains:
            return None
        anchors = torch.linspace(0.0, 1.0, self.gains, device=q_lat.device,
                                 dtype=dtype)[None, :, None, None]
        weights = (1.0 - (q_lat.to(dtype) - anchors).abs() * (self.gains - 1)).clamp_min(0.0)
        gain = torch.einsum("bkhw,km->bmhw", weights, self.log_gain.to(dtype)).exp()
        inv = torch.einsum("bkhw,km->bmhw", weights, self.log_inv_gain.to(dtype)).exp()
        return gain, inv

    @staticmethod
    def latent_qmap(q: Tensor) -> Tensor:
        """The decoder's view of a full-resolution quality map: 16×16 block maxima."""
        return F.max_pool2d(q, LATENT_STRIDE, ceil_mode=True)

    # ------------------------------------------------------------------ training
    def forward(self, x: Tensor, q: Tensor, q_lat: Tensor | None = None,
                autocast: bool = False, rate: str = "noise") -> dict:
        """Training/evaluation pass on ``x`` (B×3×H×W in [0, 1], H, W multiples of 16).

        Returns ``x_hat``, ``likelihoods`` (``y``, ``z``), ``y``, ``y_hat`` and ``params``
        (``y``, ``y_hat`` and the parameters in the coded, i.e. gained, domain).
        ``autocast``: run the transforms in bfloat16 (training speed); the entropy models
        and the quantization stay in float32.

        ``rate`` (training only; evaluation always rounds): ``"noise"``, ``y``'s likelihood
        at ``y + U(-1/2, 1/2)`` (Ballé et al., ICLR 2017; every release), or ``"rounded"``,
        at the coded ``round(y - mu) + mu``, the value the bitstream pays for, with a
        straight-through gradient for ``y`` (``mu`` gets the likelihood's gradient at the
        coded value). On release 6 the noisy rate of training batches is 12–25 % above the
        rounded one, nearly all of it on latents of predicted scale below 0.5, which cost
        next to nothing coded; a GGM head fitted to the noisy rate saves 5 % of it and nothing
        in the bitstream (``benchmarks/entropy_head_swap.py``). Fine-tuning release 6 on the
        rounded rate cost 1.4–3.3 % more rate for the same PSNR after 1,500 steps
        (``benchmarks/rate_proxy.py``): the noisy rate trains the transforms better.
        """
        if rate not in RATE_MODES:
            raise ValueError(f"rate must be one of {RATE_MODES}, got {rate!r}")
        if q_lat is None:
            q_lat = self.latent_qmap(q)
        gains = self.gain_maps(q_lat)

        def transforms():  # bfloat16 when asked
            return torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=autocast)

        def exact():  # the entropy models and the quantization: always float32
            return torch.autocast(x.device.type, enabled=False)

        with transforms():
            y = self.g_a(x, q).float()
            z = self.h_a(y)
        with exact():
            z_hat, z_lik = self.entropy_bottleneck(z.float())
        y, c_lat, params = self.latent_parameters(y, z_hat, q_lat, gains, autocast=autocast)
        with exact():
            mu, scale = params[0], params[1]
            y_hat = ste_round(y, mu)
            if rate == "rounded" and self.training:
                y_lik = self.y_likelihood(y_hat, params)
            elif self.entropy == "ggm":
                _, y_lik = self.conditional(y, scale, means=mu, beta_raw=params[2])
            else:
                _, y_lik = self.conditional(y, scale, means=mu)
        with transforms():
            x_hat = self.g_s(y_hat * gains[1] if gains else y_hat, c_lat).float()
        return {"x_hat": x_hat, "likelihoods": {"y": y_lik, "z": z_lik}, "y": y,
                "y_hat": y_hat, "params": params}

    def y_likelihood(self, values: Tensor, params: list[Tensor]) -> Tensor:
        """Bin masses of latent ``values`` (in the coded, gained domain; floored as in
        training) under the entropy parameters ``params`` of :meth:`entropy_parameters`:
        what the training rate and ``bench analyze-latents`` price a latent at."""
        if self.entropy == "ggm":
            return self.conditional.likelihood(values, params[1], means=params[0],
                                               beta_raw=params[2])
        lik = self.conditional._likelihood(values, params[1], means=params[0])
        if self.conditional.use_likelihood_bound:
            lik = self.conditional.likelihood_lower_bound(lik)
        return lik

    # ------------------------------------------------------------------ coding
    def update(self, scale_table=None, force: bool = False, update_quantiles: bool = False) -> bool:
        """Build every CDF table: compressai's modules and the GGM (compressai skips it)."""
        updated = super().update(scale_table, force=force, update_quantiles=update_quantiles)
        if isinstance(self.conditional, GeneralizedGaussianConditional):
            updated |= self.conditional.update(force=force)
        return updated

    def _indexes(self, params: list[Tensor]) -> Tensor:
        if self.entropy == "ggm":
            return self.conditional.build_indexes(params[1], beta_raw=params[2])
        return self.conditional.build_indexes(params[1])

    @torch.no_grad()
    def compress(self, x: Tensor, q: Tensor, q_lat: Tensor, encoder=None,
                 params64: bool = False, reconstruct: bool = True) -> dict:
        """Code one image (1×3×H×W in [0, 1], H, W multiples of 16) with its quality maps.

        Returns the ``z`` and ``y`` strings, ``y_hat`` exactly as the decoder will have it,
        and the reconstruction ``x_hat`` (float, unclamped; None with ``reconstruct=False``,
        which spares the synthesis transform, about half of an encode). With ``encoder`` (a
        compressai ``BufferedRansEncoder``) the symbols of ``z`` and then ``y`` are appended to
        it instead (bitstream format 2, :mod:`bench.learned.stream`) and the strings are None.

        ``params64`` (bitstream format 3): the gains and the entropy parameters (whose
        scale and shape pick each latent's rANS table) are computed in float64. In float32
        the decoder's table choice depends on the CPU's kernels: a decoder with other ones
        lost sync on 3 of 24 shared cases, in float64 on none (rounding differences of ~1e-16
        instead of ~1e-7 make a mismatch far less likely; :mod:`bench.learned.coding`).
        """
        dtype = torch.float64 if params64 else torch.float32
        if self.context and encoder is None:
            raise ValueError("a model with spatial context codes into one shared rANS stream "
                             "(bitstream format 2 or 3), not format 1's two strings")
        y = self.g_a(x, q)
        z = self.h_a(y)
        z_string = None
        if encoder is None:
            z_string = self.entropy_bottleneck.compress(z)[0]
        with single_thread():
            gains = self.gain_maps(q_lat, dtype)
            if encoder is None:
                z_hat = self.entropy_bottleneck.decompress([z_string], z.shape[-2:])
            else:
                z_hat = write_bottleneck(encoder, self.entropy_bottleneck, z)
            y, c_lat, params = self.latent_parameters(y, z_hat, q_lat, gains, dtype)
            indexes = self._indexes(params)
        mu = params[0]
        if self.context:  # the anchors, then the rest: the order the decoder needs
            for part in self._checkerboard_parts(y):
                self.conditional.compress(y[part][None], indexes[part][None],
                                          means=mu[part][None], encoder=encoder)
            y_strings = None
        else:
            y_strings = self.conditional.compress(y, indexes, means=mu, encoder=encoder)
        y_hat = torch.round(y - mu) + mu
        x_hat = None
        if reconstruct:
            x_hat = self.g_s((y_hat * gains[1] if gains else y_hat).float(), c_lat)
        return {"z": z_string, "y": y_strings[0] if y_strings else None, "y_hat": y_hat,
                "x_hat": x_hat, "z_shape": tuple(z.shape[-2:])}

    @torch.no_grad()
    def decompress(self, y_string: bytes | None, z_string: bytes | None, q_lat: Tensor,
                   decoder=None, params64: bool = False) -> dict:
        """Decode from the two strings and the latent quality map (1×1×h×w), or, with
        ``decoder`` (a compressai ``RansDecoder`` whose stream is set), from the stream's
        next symbols (bitstream formats 2 and 3; the strings are then ignored).
        ``params64``: as the encoder's (:meth:`compress`)."""
        dtype = torch.float64 if params64 else torch.float32
        if self.context and decoder is None:
            raise ValueError("a model with spatial context decodes from one shared rANS "
                             "stream (bitstream format 2 or 3), not format 1's two strings")
        h, w = q_lat.shape[-2:]
        z_shape = (-(-h // 4), -(-w // 4))
        with single_thread():
            gains = self.gain_maps(q_lat, dtype)
            if decoder is None:
                z_hat = self.entropy_bottleneck.decompress([z_string], z_shape)
            else:
                z_hat = read_bottleneck(decoder, self.entropy_bottleneck,
                                        (1, self.entropy_bottleneck.channels, *z_shape))
            c_lat, hidden = self._hyper_hidden(z_hat, q_lat, dtype)
            params = self._head_params(hidden, gains[0] if gains else None, dtype)
            indexes = self._indexes(params)
        if self.context:
            y_hat = self._decode_checkerboard(hidden, gains, dtype, params, indexes, decoder)
        else:
            y_hat = self.conditional.decompress([y_string], indexes, means=params[0],
                                                decoder=decoder)
        if decoder is not None:  # before the synthesis: garbage costs no g_s
            check_stream_end(decoder)
        return {"y_hat": y_hat,
                "x_hat": self.g_s((y_hat * gains[1] if gains else y_hat).float(), c_lat)}

    @staticmethod
    def _checkerboard_parts(like: Tensor) -> tuple[Tensor, Tensor]:
        """Masks shaped like ``like`` of the anchors and of the rest, in coding order."""
        anchors = checkerboard_anchors(like).expand_as(like)
        return anchors, ~anchors

    def _decode_checkerboard(self, hidden: Tensor, gains, dtype: torch.dtype,
                             params: list[Tensor], indexes: Tensor, decoder) -> Tensor:
        """``y_hat`` of a checkerboard model: the anchors with the hyperprior's parameters
        ``params`` and ``indexes``, then the rest with those of the anchors' context (the
        head's ``hidden`` layer from :meth:`_hyper_hidden`)."""
        anchors, rest = self._checkerboard_parts(params[0])
        y_hat = torch.zeros_like(params[0])
        y_hat[anchors] = self.conditional.decompress(
            None, indexes[anchors][None], means=params[0][anchors][None], decoder=decoder,
            dtype=params[0].dtype)[0]
        with single_thread():
            second = self._context_params(hidden, gains, dtype, y_hat)
            rest_indexes = self._indexes(second)
        y_hat[rest] = self.conditional.decompress(
            None, rest_indexes[rest][None], means=second[0][rest][None], decoder=decoder,
            dtype=params[0].dtype)[0]
        return y_hat

    def config(self) -> dict:
        """Constructor arguments, stored in checkpoints."""
        config = {"entropy": self.entropy, "N": self.N, "M": self.M, "C": self.C}
        if self.gains:
            config["gains"] = self.gains
        if self.blocks:
            config["blocks"] = self.blocks
        if self.context:
            config["context"] = self.context
        return config


def checkerboard_anchors(like: Tensor) -> Tensor:
    """The checkerboard's anchor positions of ``like``'s last two dimensions, ``(i + j)``
    even, as a boolean ``1×1×h×w`` mask (broadcasts against ``like``)."""
    h, w = like.shape[-2:]
    i = torch.arange(h, device=like.device)[:, None]
    j = torch.arange(w, device=like.device)[None, :]
    return ((i + j) % 2 == 0)[None, None]


def checkerboard_context(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``conv2d(x, weight, bias, padding=k // 2)`` at the non-anchor positions of ``x``
    (``(i + j)`` odd; zero at the anchors), for ``x`` zero at the non-anchors, as the anchors'
    coded values are: the checkerboard context's convolution computed only where its output
    is used and only from the taps that meet an anchor, about a quarter of the dense
    convolution's work (for a 5×5 kernel, 12 of the 25 taps at half the positions).

    Each output phase (row parity ``p``, column parity ``q``) of the 2×2 grid is a sum of two
    small convolutions on the half-resolution planes of the two anchor phases ``(a, b)``: the
    taps ``d = 2s + a - p`` of the kernel (rows; ``2t + b - q`` columns) that land on them.
    The sum runs in another order than the dense convolution's, so the values differ from
    it in the last bits: the encoder and the decoder both use this one.
    """
    h, w = x.shape[-2:]
    r = weight.shape[-1] // 2
    planes = F.pad(x, (0, w % 2, 0, h % 2))  # even sizes; the padding is zero like conv's
    out = x.new_zeros(x.shape[0], weight.shape[0], *planes.shape[-2:])
    for p, q in ((0, 1), (1, 0)):  # the non-anchor phases
        total = bias[:, None, None]
        for a, b in ((0, 0), (1, 1)):  # the anchor phases
            s_lo, s_hi = -((r + a - p) // 2), (r - a + p) // 2
            t_lo, t_hi = -((r + b - q) // 2), (r - b + q) // 2
            rows = [2 * s + a - p + r for s in range(s_lo, s_hi + 1)]
            cols = [2 * t + b - q + r for t in range(t_lo, t_hi + 1)]
            kernel = weight[:, :, rows][:, :, :, cols]
            plane = F.pad(planes[..., a::2, b::2], (-t_lo, t_hi, -s_lo, s_hi))
            total = total + F.conv2d(plane, kernel)
        out[..., p::2, q::2] = total
    return out[..., :h, :w]


def _blocks(channels: int, count: int) -> nn.Sequential:
    return nn.Sequential(*(ResidualBlock(channels) for _ in range(count)))


def _call64(module: nn.Module, x: Tensor) -> Tensor:
    """``module(x)`` computed in float64 from float64 copies of its weights (the module is
    left as it is)."""
    from torch.func import functional_call

    state = {name: t.double() if t.is_floating_point() else t
             for name, t in (*module.named_parameters(), *module.named_buffers())}
    return functional_call(module, state, (x.double(),))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
