"""Decoding image files into the one pixel format the harness works in: H×W×3 uint8 RGB.

Every mode Pillow can open is mapped to RGB the same way for the dataset loader and the
``original`` codec, so the uncompressed ceiling compares like with like:

- grayscale (L, 1, LA, I;16 …) is replicated to three channels;
- 16-bit samples are scaled to 8 bit with rounding (v/257, half up), not truncated;
- palette images are expanded through their palette; CMYK and YCbCr are converted by Pillow;
- an alpha channel is dropped (codecs compress colour only; COCO has no alpha);
- EXIF orientation is ignored, as COCO's annotations refer to the stored pixel grid.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}


class ImageReadError(ValueError):
    """An image file that cannot be decoded; the message names it and says what to do."""


def decode_rgb(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode an encoded image (any format Pillow reads) into H×W×3 uint8 RGB."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return to_rgb8(im, name)
    except ImageReadError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(
            f"cannot decode image {name}: {exc}. The file is truncated, corrupt or not an "
            "image; re-download it, or leave it out with --image-ids"
        ) from exc


def read_rgb(path: Path) -> tuple[np.ndarray, bytes]:
    """Read an image file; return its RGB pixels and the file's bytes."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ImageReadError(f"cannot read image file {path}: {exc.strerror or exc}") from exc
    return decode_rgb(data, str(path)), data


def to_rgb8(im: Image.Image, name: str = "<image>") -> np.ndarray:
    """Convert an opened Pillow image to H×W×3 uint8 RGB (see the module docstring)."""
    if im.mode in _SIXTEEN_BIT_MODES:
        wide = np.asarray(im, dtype=np.int64)
        if wide.min(initial=0) < 0 or wide.max(initial=0) > 65535:
            raise ImageReadError(f"image {name} has samples outside 0..65535 (mode {im.mode})")
        gray = ((wide * 255 + 32767) // 65535).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if im.mode == "F":
        raise ImageReadError(
            f"image {name} holds floating-point samples (mode F); convert it to 8-bit first"
        )
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))


def encode_png(image: np.ndarray, text: dict[str, str] | None = None) -> bytes:
    """Lossless PNG of an RGB image (used to keep reconstructions), with optional ``text``
    chunks (what the picture is; :func:`png_text` reads them back)."""
    from PIL.PngImagePlugin import PngInfo

    info = None
    if text:
        info = PngInfo()
        for key, value in text.items():
            info.add_text(key, value)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=1, pnginfo=info)
    return buf.getvalue()


def png_text(data: bytes) -> dict[str, str]:
    """The text chunks of a PNG file's bytes (empty for another format or none)."""
    with Image.open(io.BytesIO(data)) as im:
        return dict(getattr(im, "text", {}) or {})
