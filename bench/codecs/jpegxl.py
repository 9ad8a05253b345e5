"""JPEG XL anchor: libjxl through ffmpeg, lossy VarDCT at a Butteraugli distance.

Why these settings: libjxl's quality parameter is the target Butteraugli distance (lower is
better; 1.0 is "visually lossless"), and its default XYB colour space and effort 7 are what
``cjxl`` uses, so results match the reference encoder's defaults. Input is the RGB image
itself (``rgb24``; libjxl does its own colour transform, tagged sRGB). The stream is a naked
JPEG XL codestream (``FF 0A``, no ISOBMFF container), which stores the size itself; decoded
by libjxl. One thread. Quality names are ``d<distance>`` (ffmpeg allows up to 15).
"""

from __future__ import annotations

from pathlib import Path

from bench.codecs._ffmpeg import DEFAULT_TIMEOUT_S, ImageFfmpegCodec

#: Aspect ratios (width : height) a JPEG XL SizeHeader can name instead of coding the width,
#: for ratio codes 1-7.
_RATIOS = ((1, 1), (12, 10), (4, 3), (3, 2), (16, 9), (5, 4), (2, 1))


class _Bits:
    """LSB-first bit reader over a byte string (JPEG XL's bit order)."""

    def __init__(self, data: bytes, offset: int):
        self.data, self.pos = data, offset * 8

    def read(self, n: int) -> int:
        if self.pos + n > len(self.data) * 8:
            raise ValueError("truncated")
        value = 0
        for i in range(n):
            bit = self.data[(self.pos + i) >> 3] >> ((self.pos + i) & 7) & 1
            value |= bit << i
        self.pos += n
        return value

    def dimension(self, small: bool) -> int:
        """One SizeHeader dimension: 8 * (1 + u(5)) if small, else U32 of 9/13/18/30 bits + 1."""
        if small:
            return 8 * (self.read(5) + 1)
        return self.read((9, 13, 18, 30)[self.read(2)]) + 1


def codestream_size(data: bytes) -> tuple[int, int] | None:
    """Height and width in a naked JPEG XL codestream's SizeHeader, or None if not one.

    The layout (signature ``FF 0A``, then ``small`` flag, height, ratio code, width unless a
    ratio names it) is the SizeHeader of ISO/IEC 18181-1, section D.2.
    """
    if not data.startswith(b"\xff\x0a"):
        return None
    bits = _Bits(data, 2)
    try:
        small = bool(bits.read(1))
        height = bits.dimension(small)
        ratio = bits.read(3)
        if ratio == 0:
            width = bits.dimension(small)
        else:
            num, den = _RATIOS[ratio - 1]
            width = height * num // den
    except ValueError:
        return None
    return height, width


class JpegxlCodec(ImageFfmpegCodec):
    """Lossy JPEG XL (libjxl, XYB, VarDCT) at a Butteraugli distance; names are ``d<D>``."""

    name = "jpegxl"
    qualities = ("d15", "d10", "d6", "d4", "d2.5", "d1.5", "d1")
    quality_prefix, quality_range, integer_quality = "d", (0.01, 15), False
    encoder = "libjxl"
    decoder = "libjxl"
    demuxer = "jpegxl_pipe"
    suffix = ".jxl"

    def __init__(
        self,
        ffmpeg: str | Path | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        threads: int = 1,
        extra_qualities: tuple[str, ...] = (),
        effort: int = 7,
    ):
        if not 1 <= effort <= 9:
            raise ValueError(f"effort must be in 1..9, got {effort}")
        self.effort = int(effort)
        super().__init__(ffmpeg, timeout, threads, extra_qualities)

    def picture_size(self, data: bytes) -> tuple[int, int] | None:
        """The size in the codestream's SizeHeader (:func:`codestream_size`)."""
        return codestream_size(data)

    def config_text(self) -> str:
        """Effort, colour space and input format."""
        return f"lossy VarDCT xyb=1 effort={self.effort} rgb24 in (sRGB)"

    def encoder_args(self, quality: str, height: int, width: int) -> list[str]:
        """libjxl options: distance ``D``, effort, XYB."""
        distance = self.parse_quality(quality)
        return [
            "-c:v", self.encoder, "-distance", f"{distance:g}",
            "-effort", str(self.effort), "-xyb", "1", "-modular", "0",
        ]  # fmt: skip
