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
"""

from __future__ import annotations

from pathlib import Path

from bench.codecs import colour
from bench.codecs._ffmpeg import DEFAULT_TIMEOUT_S, YuvFfmpegCodec, parse_prefixed

#: x265 presets from fastest to slowest (intra-only encodes are cheap even at the slow end).
PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast",
    "medium", "slow", "slower", "veryslow", "placebo",
)  # fmt: skip

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


class HevcCodec(YuvFfmpegCodec):
    """H.265/HEVC intra with libx265 at fixed QP; quality names are ``qp<QP>``."""

    name = "hevc"
    qualities = ("qp47", "qp42", "qp37", "qp32", "qp27", "qp22", "qp17", "qp12")
    encoder = "libx265"
    decoder = "hevc"
    stream_format = "hevc"
    suffix = ".265"
    min_side = 16  # x265 rejects pictures with a side under 16

    def __init__(
        self,
        ffmpeg: str | Path | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        threads: int = 1,
        extra_qualities: tuple[str, ...] = (),
        preset: str = "veryslow",
        colour_spec: colour.ColourSpec | None = None,
    ):
        if preset not in PRESETS:
            raise ValueError(f"unknown x265 preset {preset!r}; choose from {PRESETS}")
        self.preset = preset
        super().__init__(ffmpeg, timeout, threads, extra_qualities, colour_spec)

    def parse_quality(self, quality: str) -> float:
        """QP of a ``qp<0..51>`` name."""
        return int(parse_prefixed(quality, "qp", 0, 51))

    def config_text(self) -> str:
        """Preset, x265 parameters and colour conversion."""
        return f"preset={self.preset} {':'.join(X265_PARAMS)}; {self.colour_spec.describe()}"

    def encoder_args(self, quality: str) -> list[str]:
        """libx265 options: preset and the fixed-QP intra parameter string."""
        qp = int(self.parse_quality(quality))
        params = ":".join((*X265_PARAMS, f"qp={qp}", "log-level=error"))
        return ["-c:v", self.encoder, "-preset", self.preset, "-x265-params", params]
