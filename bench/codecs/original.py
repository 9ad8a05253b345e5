"""The uncompressed ceiling: every task scored on the source images themselves."""

from __future__ import annotations

import numpy as np
import PIL

from bench.codecs.base import Codec
from bench.data.images import decode_rgb


class OriginalCodec(Codec):
    """Passes the source file through unchanged.

    Its "bitstream" is the source file exactly as stored (for COCO, the distributed JPEG),
    so its bpp is that of the source file, and its reconstruction is the pixels every other
    codec starts from: PSNR is infinite and task scores are the ceiling. It has a single
    quality, ``source``. Given pixels without a source file it cannot run.
    """

    name = "original"
    qualities = ("source",)
    uses_roi = False

    def version(self) -> str:
        return f"original-1/pillow-{PIL.__version__}"

    def encode(self, image: np.ndarray, roi: np.ndarray | None, quality: str) -> bytes:
        raise NotImplementedError(
            "the original codec needs the source file's bytes; call encode_source()"
        )

    def encode_source(
        self, image: np.ndarray, roi: np.ndarray | None, quality: str, source: bytes
    ) -> bytes:
        self.check_quality(quality)
        return source

    def decode(self, data: bytes) -> np.ndarray:
        return decode_rgb(data, "source file")
