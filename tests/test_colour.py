"""The audited RGB <-> YCbCr 4:2:0 module: exact reference values, rounding, round trips,
odd sizes, and planar files that ffmpeg reads exactly as we write them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.codecs import colour
from bench.codecs.colour import ColourSpec

REPO = Path(__file__).resolve().parents[1]
SPECS = [
    ColourSpec(matrix, range_, depth)
    for matrix in ("bt601", "bt709")
    for range_ in ("tv", "pc")
    for depth in (8, 10)
]


def kodak_images(count: int = 2) -> list[np.ndarray]:
    """The first ``count`` Kodak images ($BENCH_KODAK_DIR, default <repo>/../shared/data/kodak)."""
    folder = Path(os.environ.get("BENCH_KODAK_DIR") or REPO.parent / "shared" / "data" / "kodak")
    paths = sorted(folder.glob("kodim*.png"))[:count]
    if not paths:
        pytest.skip(f"Kodak images not found in {folder} (set BENCH_KODAK_DIR)")
    return [np.asarray(Image.open(p).convert("RGB")) for p in paths]


def test_reference_values_bt601_limited_8bit():
    spec = ColourSpec("bt601", "tv", 8)
    pixels = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 0, 255]]], np.uint8)
    y, u, v = colour.rgb_to_yuv444(pixels, spec)
    assert y.tolist() == [[16, 235, 81, 41]]
    assert u.tolist() == [[128, 128, 90, 240]]
    assert v.tolist() == [[128, 128, 240, 110]]


def test_reference_values_other_specs():
    white_black = np.array([[[255, 255, 255], [0, 0, 0]]], np.uint8)
    y, u, _ = colour.rgb_to_yuv444(white_black, ColourSpec("bt709", "tv", 10))
    assert y.tolist() == [[940, 64]] and u.tolist() == [[512, 512]]
    y, u, _ = colour.rgb_to_yuv444(white_black, ColourSpec("bt601", "pc", 8))
    assert y.tolist() == [[255, 0]] and u.tolist() == [[128, 128]]
    red = np.array([[[255, 0, 0]]], np.uint8)
    y, u, v = colour.rgb_to_yuv444(red, ColourSpec("bt709", "tv", 8))
    assert (int(y[0, 0]), int(u[0, 0]), int(v[0, 0])) == (63, 102, 240)


def test_rounds_half_up_instead_of_truncating():
    spec = ColourSpec("bt601", "tv", 8)
    # 16 + 219 * 0.5 = 125.5 -> 126 (truncation would give 125); 125.49 -> 125
    assert colour.quantise_luma(np.array([0.5]), spec).tolist() == [126]
    assert colour.quantise_luma(np.array([109.49 / 219]), spec).tolist() == [125]
    # 128 + 224 * 0.1 = 150.4 -> 150 and 128 - 224 * 0.1 = 105.6 -> 106 (not 105)
    assert colour.quantise_chroma(np.array([0.1, -0.1]), spec).tolist() == [150, 106]


def test_spec_validation_and_names():
    assert ColourSpec(range="limited").range == "tv"
    assert ColourSpec(range="full").range == "pc"
    assert ColourSpec().describe() == "yuv420p10le bt601 tv"
    assert ColourSpec(bit_depth=8).pix_fmt == "yuv420p"
    for bad in ({"matrix": "bt2020"}, {"range": "studio"}, {"bit_depth": 12}):
        with pytest.raises(ValueError):
            ColourSpec(**bad)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.matrix}-{s.range}-{s.bit_depth}")
def test_colour_round_trip_without_subsampling_is_50db(spec):
    for image in kodak_images():
        recon = colour.yuv444_to_rgb(*colour.rgb_to_yuv444(image, spec), spec)
        assert colour.psnr(image, recon) >= 50.0
        if spec.bit_depth == 10:
            # 10-bit planes hold every 8-bit RGB value: the round trip is exact
            assert np.array_equal(image, recon)


@pytest.mark.parametrize("depth", [8, 10])
def test_420_round_trip_on_kodak(depth):
    spec = ColourSpec(bit_depth=depth)
    for image in kodak_images():
        recon = colour.yuv420_to_rgb(colour.rgb_to_yuv420(image, spec), spec)
        full = colour.yuv444_to_rgb(*colour.rgb_to_yuv444(image, spec), spec)
        # chroma subsampling costs something, but Kodak stays well above 40 dB
        assert 40.0 <= colour.psnr(image, recon) < colour.psnr(image, full)


@pytest.mark.parametrize("depth", [8, 10])
def test_grey_and_smooth_chroma_survive_subsampling(depth):
    spec = ColourSpec(bit_depth=depth)
    grey = np.repeat(np.random.default_rng(1).integers(0, 256, (31, 17, 1), np.uint8), 3, axis=2)
    recon = colour.yuv420_to_rgb(colour.rgb_to_yuv420(grey, spec), spec)
    assert colour.psnr(grey, recon) >= 50.0
    yy, xx = np.mgrid[0:64, 0:64]
    ramp = np.stack([64 + xx, 96 + yy, 192 - (xx + yy) // 2], axis=2).astype(np.uint8)
    recon = colour.yuv420_to_rgb(colour.rgb_to_yuv420(ramp, spec), spec)
    assert colour.psnr(ramp, recon) >= 50.0


def test_subsample_is_2x2_mean_and_upsample_is_centre_bilinear():
    plane = np.arange(16, dtype=np.float64).reshape(4, 4)
    assert colour.subsample(plane).tolist() == [[2.5, 4.5], [10.5, 12.5]]
    up = colour.upsample(np.array([[0.0, 4.0]]))
    assert up.tolist() == [[0.0, 1.0, 3.0, 4.0], [0.0, 1.0, 3.0, 4.0]]
    # a linear ramp is reproduced exactly away from the edges
    ramp = np.tile(np.arange(16, dtype=np.float64), (4, 1))
    assert np.allclose(colour.upsample(colour.subsample(ramp))[:, 1:-1], ramp[:, 1:-1])


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (17, 31), (2, 2)])
@pytest.mark.parametrize("depth", [8, 10])
def test_odd_sizes_pad_and_crop(shape, depth):
    spec = ColourSpec(bit_depth=depth)
    image = np.random.default_rng(2).integers(0, 256, (*shape, 3), np.uint8)
    padded = colour.pad_even(image)
    assert padded.shape[0] % 2 == 0 and padded.shape[1] % 2 == 0
    assert np.array_equal(colour.crop(padded, *shape), image)
    assert np.array_equal(padded[-1, : shape[1]], image[-1])  # edge rows replicated
    assert np.array_equal(padded[: shape[0], -1], image[:, -1])  # edge columns replicated
    yuv = colour.rgb_to_yuv420(image, spec)
    assert yuv.y.shape == shape and yuv.u.shape == colour.chroma_shape(*shape)
    assert colour.yuv420_to_rgb(yuv, spec).shape == image.shape


@pytest.mark.parametrize("depth", [8, 10])
def test_yuv_file_round_trip(tmp_path, depth):
    spec = ColourSpec(bit_depth=depth)
    image = np.random.default_rng(3).integers(0, 256, (17, 31, 3), np.uint8)
    yuv = colour.rgb_to_yuv420(image, spec)
    path = colour.write_yuv(tmp_path / "a.yuv", yuv)
    assert path.stat().st_size == colour.frame_bytes(17, 31, depth)
    back = colour.read_yuv(path, 17, 31, depth)
    for a, b in zip((yuv.y, yuv.u, yuv.v), (back.y, back.u, back.v), strict=True):
        assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="expected"):
        colour.read_yuv(path, 18, 31, depth)


def _ffmpeg() -> str:
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as exc:
        pytest.skip(f"no ffmpeg: {exc}")


@pytest.mark.parametrize("depth", [8, 10])
def test_ffmpeg_reads_our_planar_files_unchanged(tmp_path, depth):
    """ffmpeg rawvideo -> yuv4mpegpipe copies our planes bit-exactly, odd size included."""
    spec = ColourSpec(bit_depth=depth)
    image = np.random.default_rng(4).integers(0, 256, (17, 31, 3), np.uint8)
    yuv = colour.rgb_to_yuv420(image, spec)
    src = colour.write_yuv(tmp_path / "in.yuv", yuv)
    out = tmp_path / "out.y4m"
    argv = [
        _ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
        "-f", "rawvideo", "-pix_fmt", spec.pix_fmt, "-s", "31x17", "-i", str(src),
        "-f", "yuv4mpegpipe", "-strict", "-1", str(out),
    ]  # fmt: skip
    subprocess.run(argv, check=True, capture_output=True, timeout=60)
    back = colour.yuv_from_y4m(out.read_bytes())
    assert back.bit_depth == depth
    for a, b in zip((yuv.y, yuv.u, yuv.v), (back.y, back.u, back.v), strict=True):
        assert np.array_equal(a, b)


def test_y4m_rejects_other_formats():
    with pytest.raises(ValueError, match="4:2:0"):
        colour.yuv_from_y4m(b"YUV4MPEG2 W2 H2 C444\nFRAME\n" + bytes(12))
    with pytest.raises(ValueError, match="YUV4MPEG2"):
        colour.yuv_from_y4m(b"P6\n")


def test_psnr():
    a = np.zeros((4, 4, 3), np.uint8)
    assert colour.psnr(a, a) == float("inf")
    assert colour.psnr(a, a + 1) == pytest.approx(48.1308, abs=1e-3)
