"""HEVC (H.265) anchor: x265 through ffmpeg, intra-only at a fixed QP.

Why these settings: every picture is an intra picture (``keyint=1``) coded at one fixed QP,
and ``ipratio=1`` makes that the slice QP (x265's default I/P ratio of 1.4 would code "QP 32"
at slice QP 29, unlike VTM's all-intra configuration); adaptive quantisation and the
psycho-visual tools (``aq-mode=0``, ``psy-rd=0``, ``psy-rdoq=0``) are off so that x265
optimises plain MSE, as PSNR measures it. ``info=0``
drops the ~2 KB SEI in which x265 otherwise writes its whole command line into every stream.
x265 runs single-threaded (``pools=none``, ``frame-threads=1``, hence no WPP) because the
harness parallelises across images. Input is YUV 4:2:0 10-bit from :mod:`bench.codecs.colour`
(Main 10, 10-bit internal); the stream is raw Annex-B H.265 behind a 3-7 byte picture header,
decoded by ffmpeg's native HEVC decoder.

The grid uses the same QPs as :mod:`bench.codecs.vvc` (the MPEG VCM anchor QPs 22..47 plus
17 and 12 for the high rates), so both span about 0.03-2 bpp on COCO.

ROI (``roi_method="qp"``, ``bench run --codec hevc --roi-method qp``): x265's own spatial
rate control codes the ROI's 32x32 blocks at the grid QP and the rest :data:`ROI_QP_DELTA`
QP higher (points ``qp37-d16``; labels ``hevc@roi-gt-qp``/``hevc@roi-pred-qp``); another
background offset (``roi_qp_delta``, ``--roi-qp-delta 8``) names its points ``qp37-d8`` and
its label ``hevc@roi-gt-qp@roi_qp_delta-8``. The ROI
reaches x265 as ffmpeg region-of-interest data, which x265 applies only with adaptive
quantisation on and not at a fixed QP; :mod:`bench.codecs.roi_qp` says how the variant
keeps the uniform codec's QP otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from bench.codecs import colour, roi_qp
from bench.codecs._ffmpeg import DEFAULT_TIMEOUT_S, YuvFfmpegCodec

#: x265 options that make it a plain fixed-QP, intra-only, single-threaded MSE encoder.
X265_PARAMS = (
    "keyint=1",
    "ipratio=1",
    "aq-mode=0",
    "psy-rd=0",
    "psy-rdoq=0",
    "info=0",
    "pools=none",
    "frame-threads=1",
    "wpp=0",
    "lookahead-slices=0",
)

#: ROI method ``qp``: QPs the background is coded above the ROI, at every grid point.
ROI_QP_DELTA = 16
#: ROI method ``qp``: x265 options replacing ``aq-mode=0`` (and ``qp=`` by ``crf=``) so that
#: x265 applies the per-block offsets (see :mod:`bench.codecs.roi_qp`).
X265_ROI_PARAMS = ("aq-mode=1", "aq-strength=0.001", "cutree=0", "bframes=0")


class HevcCodec(YuvFfmpegCodec):
    """H.265/HEVC intra with libx265 at fixed QP; quality names are ``qp<QP>``."""

    name = "hevc"
    qualities = ("qp47", "qp42", "qp37", "qp32", "qp27", "qp22", "qp17", "qp12")
    encoder = "libx265"
    decoder = "hevc"
    stream_format = "hevc"
    suffix = ".265"
    min_side = 16  # x265 rejects pictures with a side under 16
    quality_prefix, quality_range = "qp", (0, 51)
    #: x265 presets (intra-only encodes are cheap even at the slow end).
    presets = (
        "ultrafast", "superfast", "veryfast", "faster", "fast",
        "medium", "slow", "slower", "veryslow", "placebo",
    )  # fmt: skip
    #: ROI methods x265 implements itself (:func:`bench.registry.create_codec`).
    roi_methods: ClassVar[tuple[str, ...]] = ("qp",)
    #: the ``qp`` method's ROI block size (the version names it; ``benchmarks/roi_qp_tune.py``
    #: sets others on an instance to compare them)
    roi_block: int = roi_qp.X265_BLOCK

    def __init__(
        self,
        ffmpeg: str | Path | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        threads: int = 1,
        extra_qualities: tuple[str, ...] = (),
        preset: str = "veryslow",
        colour_spec: colour.ColourSpec | None = None,
        roi_method: str | None = None,
        roi_source: str | None = None,
        roi_qp_delta: int = ROI_QP_DELTA,
    ):
        if roi_method not in (None, *self.roi_methods):
            raise ValueError(
                f"unknown hevc ROI method {roi_method!r}; choose from {', '.join(self.roi_methods)}"
            )
        if isinstance(roi_qp_delta, bool) or not isinstance(roi_qp_delta, int) or not (
                1 <= roi_qp_delta <= 51):
            raise ValueError(f"background QP offset {roi_qp_delta!r} must be a whole number of "
                             "QPs from 1 to 51 (the uniform codec is offset 0)")
        if roi_method is None and roi_qp_delta != ROI_QP_DELTA:
            raise ValueError("a background QP offset needs the qp ROI method (roi_method='qp', "
                             "bench run --roi-method qp)")
        #: the ``qp`` method's background QP offset (the points and the version name it)
        self.roi_qp_delta = roi_qp_delta
        self.preset = self.check_preset(preset)
        self.roi_method = roi_method
        self.roi_source = roi_source  # None: the GT ROI; else the predicted ROI's key
        if roi_method is not None:
            self.uses_roi = True
            self.qualities = tuple(f"{q}-d{roi_qp_delta}" for q in type(self).qualities)
        super().__init__(ffmpeg, timeout, threads, extra_qualities, colour_spec)

    def parse_quality(self, quality: str) -> float:
        """QP (of the ROI, with the ``qp`` ROI method) of a ``qp<0..51>[-d<delta>]`` name."""
        return super().parse_quality(quality.split("-d")[0])

    def params(self) -> tuple[str, ...]:
        """x265 parameters without the QP: uniform, or with the ``qp`` ROI method's AQ."""
        if self.roi_method is None:
            return X265_PARAMS
        return tuple(p for p in X265_PARAMS if p != "aq-mode=0") + X265_ROI_PARAMS

    def config_text(self) -> str:
        """Preset, x265 parameters, ROI method and colour conversion."""
        text = f"preset={self.preset} {':'.join(self.params())}"
        if self.roi_method is not None:
            roi = f"roi-pred-{self.roi_source}" if self.roi_source else "roi-gt"
            text += (
                f"; {roi}-{self.roi_method} crf=QP background +{self.roi_qp_delta} QP "
                f"block={self.roi_block} via addroi"
            )
        return f"{text}; {self.colour_spec.describe()}"

    def encoder_args(self, quality: str) -> list[str]:
        """libx265 options: preset and the intra parameter string (fixed QP; ``crf`` equal
        to the ROI's QP with the ``qp`` ROI method)."""
        qp = int(self.parse_quality(quality))
        rate = f"qp={qp}" if self.roi_method is None else f"crf={qp}"
        params = ":".join((*self.params(), rate, "log-level=error"))
        return ["-c:v", self.encoder, "-preset", self.preset, "-x265-params", params]

    def roi_args(self, roi: np.ndarray | None, height: int, width: int, quality: str) -> list[str]:
        """With the ``qp`` ROI method: the ``addroi`` chain marking ``roi``'s blocks (QP
        offset 0) and the background (+:attr:`roi_qp_delta`), in :attr:`roi_block` blocks."""
        if self.roi_method is None:
            return []
        qp_range = 51 + 6 * (self.colour_spec.bit_depth - 8)  # libx265's qoffset scale
        return ["-vf", roi_qp.addroi_filter(roi, height, width, self.roi_qp_delta, qp_range,
                                            self.roi_block)]
