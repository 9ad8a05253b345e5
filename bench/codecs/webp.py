"""WebP anchor: lossy libwebp (VP8 intra) through ffmpeg at a quality factor.

Why these settings: WebP's lossy mode codes YUV 4:2:0 (BT.601 limited range, 8 bit), so it is
fed planes made by :mod:`bench.codecs.colour` (``yuv420p``) instead of letting libwebp or
ffmpeg convert, and the decoded 4:2:0 planes are converted back by the same module.
``-compression_level 6`` is libwebp's slowest, best method. The stream is a plain ``.webp``
file (RIFF + VP8 chunk, 20 bytes of container), which carries the size itself, odd sizes
included. Decoded by ffmpeg's native WebP decoder. Quality names are ``q<0..100>``; libwebp's
lowest quality bounds how low the rate can go.
"""

from __future__ import annotations

from bench.codecs._ffmpeg import ImageFfmpegCodec, parse_prefixed


class WebpCodec(ImageFfmpegCodec):
    """Lossy WebP (libwebp, method 6) at a quality factor; names are ``q<Q>``."""

    name = "webp"
    qualities = ("q0", "q10", "q25", "q45", "q65", "q80", "q90", "q95")
    encoder = "libwebp"
    decoder = "webp"
    input_pix_fmt = "yuv420p"
    muxer = "webp"
    demuxer = "webp_pipe"
    suffix = ".webp"

    def parse_quality(self, quality: str) -> float:
        """libwebp quality factor of a ``q<0..100>`` name."""
        return parse_prefixed(quality, "q", 0, 100)

    def config_text(self) -> str:
        """Method, preset and colour conversion."""
        return f"lossy method=6 preset=none; {self.colour_spec.describe()} via bench colour"

    def encoder_args(self, quality: str, height: int, width: int) -> list[str]:
        """libwebp options: lossy, method 6, quality factor ``Q``."""
        factor = self.parse_quality(quality)
        return [
            "-c:v", self.encoder, "-lossless", "0", "-preset", "none",
            "-compression_level", "6", "-quality", f"{factor:g}",
        ]  # fmt: skip
