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

from bench.codecs._ffmpeg import ImageFfmpegCodec


def webp_size(data: bytes) -> tuple[int, int] | None:
    """Height and width a WebP file declares in its first chunk, or None if it is not one.

    Per RFC 9649: after ``RIFF`` size ``WEBP`` comes a ``VP8 `` chunk (lossy: the VP8 key
    frame header, start code ``9D 01 2A`` then 14-bit width and height), a ``VP8L`` chunk
    (lossless: signature ``2F`` then width-1 and height-1 in 14 bits each) or a ``VP8X``
    chunk (extended: 24-bit canvas width-1 and height-1).
    """
    if len(data) < 30 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    fourcc = data[12:16]
    if fourcc == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width = int.from_bytes(data[26:28], "little") & 0x3FFF
        height = int.from_bytes(data[28:30], "little") & 0x3FFF
        return height, width
    if fourcc == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits >> 14 & 0x3FFF) + 1, (bits & 0x3FFF) + 1
    if fourcc == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return height, width
    return None


class WebpCodec(ImageFfmpegCodec):
    """Lossy WebP (libwebp, method 6) at a quality factor; names are ``q<Q>``."""

    name = "webp"
    qualities = ("q0", "q10", "q25", "q45", "q65", "q80", "q90", "q95")
    quality_prefix, quality_range, integer_quality = "q", (0, 100), False
    encoder = "libwebp"
    decoder = "webp"
    input_pix_fmt = "yuv420p"
    muxer = "webp"
    demuxer = "webp_pipe"
    suffix = ".webp"

    def picture_size(self, data: bytes) -> tuple[int, int] | None:
        """The size in the file's first chunk (:func:`webp_size`)."""
        return webp_size(data)

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
