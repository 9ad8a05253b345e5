"""Every pixel format users throw at the harness ends up as H×W×3 uint8 RGB, or a clear error."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from bench.data.images import ImageReadError, decode_rgb, read_rgb


def _encode(im: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


def test_grayscale_is_replicated():
    g = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    out = decode_rgb(_encode(Image.fromarray(g, mode="L")))
    assert out.shape == (3, 4, 3) and out.dtype == np.uint8
    assert (out == g[:, :, None]).all()


def test_sixteen_bit_png_is_rounded_not_truncated():
    v = np.array([[0, 128, 129, 257, 385, 386, 65535]], dtype=np.uint16)
    out = decode_rgb(_encode(Image.fromarray(v)))
    # v/257 rounded half up: 0, 0.498→0, 0.502→1, 1, 1.498→1, 1.502→2, 255
    assert out[0, :, 0].tolist() == [0, 0, 1, 1, 1, 2, 255]
    assert (out[..., 0] == out[..., 2]).all()


def test_rgba_drops_alpha():
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 10
    out = decode_rgb(_encode(Image.fromarray(rgba, mode="RGBA")))
    assert out.shape == (2, 2, 3) and (out[..., 0] == 200).all() and (out[..., 1:] == 0).all()


def test_palette_is_expanded():
    im = Image.new("P", (3, 2))
    im.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    im.putpixel((1, 1), 1)
    out = decode_rgb(_encode(im))
    assert out[1, 1].tolist() == [10, 20, 30] and out[0, 0].tolist() == [0, 0, 0]


def test_cmyk_jpeg_is_converted():
    im = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # pure red in CMYK
    out = decode_rgb(_encode(im, "JPEG"))
    assert out.shape == (8, 8, 3)
    assert out[..., 0].mean() > 200 and out[..., 1].mean() < 60


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (17, 31)])
def test_tiny_and_odd_sizes(shape):
    rgb = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    assert (decode_rgb(_encode(Image.fromarray(rgb))) == rgb).all()


def test_truncated_file_names_the_file(tmp_path):
    data = _encode(Image.fromarray(np.full((64, 64, 3), 99, np.uint8)), "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="cut.jpg.*(truncated|corrupt)"):
        read_rgb(path)


def test_not_an_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("hello")
    with pytest.raises(ImageReadError, match="notes.jpg"):
        read_rgb(path)


def test_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match="gone.jpg"):
        read_rgb(tmp_path / "gone.jpg")
