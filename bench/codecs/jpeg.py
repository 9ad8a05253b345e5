"""JPEG through Pillow's libjpeg(-turbo): the ubiquitous baseline."""

from __future__ import annotations

import io

import numpy as np
import PIL
from PIL import Image, features

from bench.codecs.base import Codec, check_image
from bench.data.images import decode_rgb


class JpegCodec(Codec):
    """Baseline JPEG, 4:2:0 chroma subsampling, standard tables scaled by the IJG quality.

    The JFIF stream carries the image size, so the bitstream is the file as written. The
    grid (IJG quality 3 … 90) spans about 0.2–2.5 bpp on COCO val2017.
    """

    name = "jpeg"
    qualities = ("q3", "q5", "q10", "q20", "q35", "q50", "q70", "q85", "q90")
    uses_roi = False

    def version(self) -> str:
        turbo = features.version("libjpeg_turbo") or "libjpeg"
        return f"pillow-{PIL.__version__}/libjpeg-turbo-{turbo}/baseline-420"

    def encode(self, image: np.ndarray, roi: np.ndarray | None, quality: str) -> bytes:
        check_image(image)
        q = int(self.check_quality(quality)[1:])
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="JPEG", quality=q, subsampling=2)
        return buf.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        return decode_rgb(data, "jpeg bitstream")
