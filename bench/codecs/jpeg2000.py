"""JPEG 2000 anchor: OpenJPEG through ffmpeg, lossy 9/7 wavelet at a target compression ratio.

Why these settings: ``-irreversible 1`` selects the 9/7 wavelet and the irreversible colour
transform (ICT, a YCbCr matrix OpenJPEG applies to RGB input itself), the configuration for
lossy coding; one quality layer with rate-distortion allocation (``-compression_level N``,
which ffmpeg passes on as a compression ratio of ``2N`` relative to 24-bit RGB) hits a target
rate, so quality names are compression ratios: ``cr<R>`` aims at ``24 / R`` bpp. Input is the
RGB image itself (``rgb24``). The stream is a raw J2K codestream (``-format j2k``, no JP2
boxes) from which the "Created by OpenJPEG" comment marker is removed, because it carries no
picture information but would cost about 40 bytes. The decomposition depth is 6 levels, or
fewer when the image is too small for 6. Decoded by ffmpeg's native JPEG 2000 decoder.
"""

from __future__ import annotations

import math

from bench.codecs._ffmpeg import ImageFfmpegCodec
from bench.codecs.base import CodecError

#: Wavelet resolution levels (decompositions + 1) on images large enough for them.
MAX_RESOLUTIONS = 6

_SOC, _SIZ, _SOT, _COM = b"\xff\x4f", b"\xff\x51", b"\xff\x90", b"\xff\x64"


def resolutions_for(height: int, width: int) -> int:
    """Resolution levels OpenJPEG accepts for an image: 2**(levels-1) must fit its sides."""
    return max(1, min(MAX_RESOLUTIONS, int(math.log2(min(height, width))) + 1))


def strip_comments(codestream: bytes) -> bytes:
    """The codestream without COM marker segments in its main header (before the first SOT)."""
    if not codestream.startswith(_SOC):
        raise CodecError("libopenjpeg wrote no J2K codestream (SOC marker missing)")
    out, pos = bytearray(_SOC), 2
    while pos + 4 <= len(codestream):
        marker = codestream[pos : pos + 2]
        if marker == _SOT:
            break
        length = int.from_bytes(codestream[pos + 2 : pos + 4], "big")
        if marker != _COM:
            out += codestream[pos : pos + 2 + length]
        pos += 2 + length
    return bytes(out) + codestream[pos:]


def codestream_size(data: bytes) -> tuple[int, int] | None:
    """Height and width in a J2K codestream's SIZ marker segment, or None if it is not one.

    ITU-T T.800 A.5.1: SIZ directly follows SOC; after Lsiz and Rsiz come Xsiz, Ysiz (the
    reference grid) and XOsiz, YOsiz (the image offset), 32 bits each; the image is
    (Xsiz - XOsiz) x (Ysiz - YOsiz).
    """
    if len(data) < 24 or data[:2] != _SOC or data[2:4] != _SIZ:
        return None
    xsiz, ysiz, xosiz, yosiz = (int.from_bytes(data[i : i + 4], "big") for i in (8, 12, 16, 20))
    if xsiz <= xosiz or ysiz <= yosiz:
        return None
    return ysiz - yosiz, xsiz - xosiz


class Jpeg2000Codec(ImageFfmpegCodec):
    """JPEG 2000 (OpenJPEG, 9/7 irreversible) at a target ratio; names are ``cr<R>``."""

    name = "jpeg2000"
    qualities = ("cr480", "cr240", "cr120", "cr64", "cr32", "cr16")
    quality_prefix, quality_range = "cr", (2, 10_000)
    encoder = "libopenjpeg"
    decoder = "jpeg2000"
    demuxer = "j2k_pipe"
    suffix = ".j2k"

    def parse_quality(self, quality: str) -> float:
        """Compression ratio of a ``cr<R>`` name (an even number from 2 up)."""
        ratio = super().parse_quality(quality)
        if ratio % 2:
            raise ValueError(f"quality {quality!r}: ffmpeg supports only even ratios")
        return ratio

    def config_text(self) -> str:
        """Wavelet, layers, resolutions, input format and marker trimming."""
        return (
            f"j2k codestream irreversible=1 (9/7+ICT) layers=1 rate-allocated "
            f"numresolution<={MAX_RESOLUTIONS} rgb24 in; COM marker stripped"
        )

    def encoder_args(self, quality: str, height: int, width: int) -> list[str]:
        """libopenjpeg options: J2K codestream, 9/7 wavelet, one layer at ratio ``R``."""
        ratio = int(self.parse_quality(quality))
        return [
            "-c:v", self.encoder, "-format", "j2k", "-irreversible", "1",
            "-compression_level", str(ratio // 2),
            "-numresolution", str(resolutions_for(height, width)),
        ]  # fmt: skip

    def picture_size(self, data: bytes) -> tuple[int, int] | None:
        """The size in the codestream's SIZ marker segment (:func:`codestream_size`)."""
        return codestream_size(data)

    def postprocess(self, stream: bytes) -> bytes:
        """Drop the encoder's comment marker (it costs bytes and holds no picture data)."""
        return strip_comments(stream)
