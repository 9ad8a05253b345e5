"""Every registered codec, tested through the registry: a new codec is tested for free.

Round trip on generated images (odd sizes and 1×1 included): the decoder gets only the
bytes, returns the original shape, and the quality grid is ordered from low to high rate.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.metrics import psnr
from bench.registry import create_codec, list_codecs
from tests.conftest import jpeg_bytes, natural_image


def _codec(name):
    codec = create_codec(name)
    reason = codec.availability()
    if reason is not None:
        pytest.skip(f"{name} unavailable here: {reason}")
    return codec


def _encode(codec, image, quality):
    source = jpeg_bytes(image, 100)
    if codec.name == "original":
        from bench.data.images import decode_rgb

        image = decode_rgb(source)
    return codec.encode_source(image, None, quality, source), image


@pytest.mark.parametrize("name", list_codecs())
def test_declares_grid_and_version(name):
    codec = _codec(name)
    assert codec.name == name
    assert len(codec.qualities) >= 1 and len(set(codec.qualities)) == len(codec.qualities)
    assert isinstance(codec.version(), str) and codec.version()


@pytest.mark.parametrize("name", list_codecs())
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (31, 17), (64, 96)])
def test_round_trip_any_size(name, shape):
    codec = _codec(name)
    image = natural_image(*shape, seed=3)
    quality = codec.qualities[-1]
    data, image = _encode(codec, image, quality)
    assert isinstance(data, bytes) and len(data) > 0
    recon = codec.decode(data)
    assert recon.shape == image.shape and recon.dtype == np.uint8
    if shape == (64, 96):
        assert psnr(image, recon) > 28, "the highest quality should be close to the input"


@pytest.mark.parametrize("name", list_codecs())
def test_rate_increases_along_the_grid(name):
    codec = _codec(name)
    image = natural_image(96, 128, seed=5)
    sizes = [len(_encode(codec, image, q)[0]) for q in codec.qualities]
    assert sizes == sorted(sizes) and (len(sizes) == 1 or sizes[0] < sizes[-1]), sizes


@pytest.mark.parametrize("name", list_codecs())
def test_unknown_quality_names_the_grid(name):
    codec = _codec(name)
    with pytest.raises(ValueError, match=codec.qualities[0]):
        codec.check_quality("no-such-quality")


def test_original_passes_the_source_through():
    codec = create_codec("original")
    src = jpeg_bytes(natural_image(20, 30), 80)
    assert codec.encode_source(np.zeros((20, 30, 3), np.uint8), None, "source", src) == src
