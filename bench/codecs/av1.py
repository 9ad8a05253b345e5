"""AV1 anchor: libaom through ffmpeg as a still picture (what AVIF stores), constant quality.

Why these settings: ``-usage allintra -still-picture 1`` makes libaom code one key frame with
the reduced still-picture header, as avifenc does; ``-crf`` with ``-b:v 0`` is constant-quality
mode, so the bitstream depends on the CRF (cq-level) alone. ``-tune psnr``, ``-aq-mode 0`` and
``deltaq-mode=0`` keep the quantiser uniform so that libaom optimises plain MSE. ``-cpu-used 4``
is about 3x faster than 2 for a few percent more bits at equal PSNR (measured on Kodak).
One thread, one tile, no row-MT: the harness parallelises across images. Input is YUV 4:2:0
10-bit from :mod:`bench.codecs.colour`; the stream is raw low-overhead OBUs (``-f obu``, no
IVF/MP4 container) behind a 3-7 byte picture header, decoded with libdav1d.

Quality names are ``crf<0..63>``; ``crf0`` is lossless coding of the YUV planes.
"""

from __future__ import annotations

from pathlib import Path

from bench.codecs import colour
from bench.codecs._ffmpeg import DEFAULT_TIMEOUT_S, YuvFfmpegCodec


class Av1Codec(YuvFfmpegCodec):
    """AV1 still picture with libaom at constant quality; quality names are ``crf<N>``."""

    name = "av1"
    qualities = ("crf60", "crf52", "crf44", "crf36", "crf28", "crf20", "crf12", "crf6")
    encoder = "libaom-av1"
    decoder = "libdav1d"
    stream_format = "obu"
    suffix = ".obu"
    quality_prefix, quality_range = "crf", (0, 63)

    def __init__(
        self,
        ffmpeg: str | Path | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        threads: int = 1,
        extra_qualities: tuple[str, ...] = (),
        cpu_used: int = 4,
        colour_spec: colour.ColourSpec | None = None,
    ):
        if not 0 <= cpu_used <= 9:
            raise ValueError(f"cpu_used must be in 0..9, got {cpu_used}")
        self.cpu_used = int(cpu_used)
        super().__init__(ffmpeg, timeout, threads, extra_qualities, colour_spec)

    def config_text(self) -> str:
        """Usage, speed, tuning and colour conversion."""
        return (
            f"allintra still-picture cpu-used={self.cpu_used} end-usage=q tune=psnr aq-mode=0 "
            f"deltaq-mode=0 tiles=1 threads={self.threads}; {self.colour_spec.describe()}"
        )

    def encoder_args(self, quality: str) -> list[str]:
        """libaom options: all-intra still picture at constant quality ``crf``."""
        crf = self.parse_quality(quality)
        return [
            "-c:v", self.encoder, "-usage", "allintra", "-still-picture", "1",
            "-cpu-used", str(self.cpu_used), "-crf", str(crf), "-b:v", "0",
            "-tune", "psnr", "-aq-mode", "0", "-aom-params", "deltaq-mode=0",
            "-row-mt", "0", "-tile-columns", "0", "-tile-rows", "0",
        ]  # fmt: skip
