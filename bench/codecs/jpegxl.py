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

from bench.codecs._ffmpeg import DEFAULT_TIMEOUT_S, ImageFfmpegCodec, parse_prefixed


class JpegxlCodec(ImageFfmpegCodec):
    """Lossy JPEG XL (libjxl, XYB, VarDCT) at a Butteraugli distance; names are ``d<D>``."""

    name = "jpegxl"
    qualities = ("d15", "d10", "d6", "d4", "d2.5", "d1.5", "d1")
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

    def parse_quality(self, quality: str) -> float:
        """Butteraugli distance of a ``d<0.01..15>`` name (0 would be lossless)."""
        return parse_prefixed(quality, "d", 0.01, 15)

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
