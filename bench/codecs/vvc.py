"""VVC (H.266) anchor: Fraunhofer vvenc through ffmpeg, all-intra at a fixed QP.

Why these settings: the benchmark compares still images, so every picture is an intra
picture (``IntraPeriod=1``) coded at one fixed QP without perceptual QP adaptation (``-qpa 0``),
which makes bitstreams depend on the QP alone and PSNR the quantity the encoder optimises.
Input is YUV 4:2:0 10-bit (``yuv420p10le``, the only format ffmpeg's libvvenc accepts) made by
:mod:`bench.codecs.colour`; vvenc codes it with 10-bit internal depth (Main 10). The stream
is raw Annex-B H.266 (``.266``) behind a 3-7 byte picture header, decoded by ffmpeg's native
VVC decoder.

The grid is the MPEG VCM anchor QP set (22..47) plus QPs 17 and 12 for the high rates, so
that COCO images span about 0.03-2 bpp.
"""

from __future__ import annotations

from pathlib import Path

from bench.codecs import colour
from bench.codecs._ffmpeg import DEFAULT_TIMEOUT_S, YuvFfmpegCodec
from bench.codecs.base import CodecError, CodecUnavailable


class VvcCodec(YuvFfmpegCodec):
    """H.266/VVC all-intra with libvvenc at fixed QP; quality names are ``qp<QP>``."""

    name = "vvc"
    qualities = ("qp47", "qp42", "qp37", "qp32", "qp27", "qp22", "qp17", "qp12")
    encoder = "libvvenc"
    decoder = "vvc"
    stream_format = "vvc"
    suffix = ".266"
    quality_prefix, quality_range = "qp", (0, 63)
    #: vvenc presets ffmpeg knows.
    presets = ("faster", "fast", "medium", "slow", "slower")
    #: vvenc rejects 8x8 pictures, and ffmpeg's wrapper gives vvenc an output buffer of W*H
    #: bytes, so tiny pictures at high quality would not fit; 32x32 leaves 1 KiB.
    min_side = 32

    def __init__(
        self,
        ffmpeg: str | Path | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        threads: int = 1,
        extra_qualities: tuple[str, ...] = (),
        preset: str = "medium",
        colour_spec: colour.ColourSpec | None = None,
    ):
        self.preset = self.check_preset(preset)
        super().__init__(ffmpeg, timeout, threads, extra_qualities, colour_spec)
        if self.colour_spec.bit_depth != 10:
            raise ValueError("ffmpeg's libvvenc accepts only 10-bit input (yuv420p10le)")

    def config_text(self) -> str:
        """Preset, intra-only fixed QP without QPA, threads and colour conversion."""
        return (
            f"preset={self.preset} all-intra IntraPeriod=1 IntraQPOffset=0 fixed-QP "
            f"PerceptQPA=0 level=6.2 threads={self.threads}; {self.colour_spec.describe()}"
        )

    def encoder_args(self, quality: str) -> list[str]:
        """libvvenc options: preset, QP, perceptual QPA off, intra period 1, level 6.2.

        ``IntraQPOffset=0`` matters: vvenc's default of -3 would code "QP 32" at slice QP 29,
        unlike VTM's all-intra configuration and x265, where the slice QP is the QP asked for.

        The level is fixed because vvenc derives a low level from small pictures and then
        refuses pictures whose size exceeds that level's limits (noise at low QP); the level
        is only signalled, so the bitstream is otherwise unchanged.
        """
        qp = int(self.parse_quality(quality))
        return [
            "-c:v", self.encoder, "-preset", self.preset, "-qp", str(qp), "-qpa", "0",
            "-vvenc-params", "IntraPeriod=1:IntraQPOffset=0", "-level", "6.2",
        ]  # fmt: skip

    def _encode_failed(self, exc: CodecError, height: int, width: int, quality: str) -> CodecError:
        """Name the likely limit behind libvvenc's "Error submitting video frame".

        ffmpeg's libvvenc wrapper gives vvenc an output buffer of width x height bytes (of
        the coded, padded picture) for one picture (vvenc's own application allocates about
        twice that), so a picture whose bitstream needs more than 8 bits per pixel cannot be
        coded through ffmpeg: noise-like content at QP 14 or lower (64x64 uniform noise
        takes 7.9 bpp at QP 17). Real photographs stay far below it at the grid's QPs. The
        wrapper reports every failure of vvenc's encode with that one line, so the message
        says "most likely" and keeps ffmpeg's text.
        """
        if isinstance(exc, CodecUnavailable) or "Error submitting video frame" not in str(exc):
            return exc
        qp = int(self.parse_quality(quality))
        return CodecError(
            f"{self.name}: libvvenc could not code this picture at {quality} (coded size "
            f"{width}x{height}); most likely its bitstream needs more than the {width * height} "
            f"bytes (8 bits per pixel) ffmpeg's libvvenc wrapper holds for one picture "
            f"(noise-like content at a low QP). Code it at a QP above {qp}, or with the vtm "
            f"codec, which has no such limit. {exc}"
        )
