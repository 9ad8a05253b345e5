"""ROI by background simplification (``--roi-method blur``): any codec, the ROI untouched,
real shared images coded by a real codec, and a third-party codec wrapped for free."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bench.cli import main
from bench.data.coco import CocoDataset
from bench.metrics import region_psnrs
from bench.registry import create_codec
from bench.roi_prefilter import KEEP_PX, PrefilteredCodec, sigma_schedule, simplify_background
from tests.conftest import natural_image
from tests.test_registry import _plugin_env


def test_the_prefilter_never_changes_a_pixel_inside_the_roi():
    rng = np.random.default_rng(3)
    image = natural_image(96, 128, seed=5)
    for sigma in sigma_schedule(5):
        roi = rng.random((96, 128)) < 0.002  # scattered points and their margins
        roi[30:50, 40:90] = True
        out = simplify_background(image, roi, sigma)
        assert out.dtype == np.uint8 and out.shape == image.shape
        assert np.array_equal(out[roi], image[roi])
        assert not np.array_equal(out[~roi], image[~roi])  # the background was blurred
    assert np.array_equal(simplify_background(image, np.ones((96, 128), bool), 8.0), image)
    far = np.zeros((96, 128), bool)
    far[0, 0] = True
    out = simplify_background(image, far, 4.0)
    assert np.array_equal(out[:KEEP_PX // 2, :KEEP_PX // 2], image[:KEEP_PX // 2, :KEEP_PX // 2])
    assert not np.array_equal(out[60:, 60:], image[60:, 60:])


def test_keep_mask_holds_every_pixel_within_the_margin_and_few_more():
    """The half-resolution keep mask is a superset of the exact Euclidean dilation by
    KEEP_PX and inside the dilation by KEEP_PX + 3, for odd and even sizes."""
    from bench.roi_pred import dilate
    from bench.roi_prefilter import keep_mask

    for shape in ((96, 128), (97, 131), (61, 40)):
        roi = np.zeros(shape, bool)
        roi[20:31, 17:26] = True  # a block, a lone pixel at an odd position, a corner
        roi[shape[0] - 4, shape[1] - 2] = roi[0, 0] = True
        keep = keep_mask(roi, shape)
        assert keep.shape == shape and keep.dtype == bool
        assert not (dilate(roi, KEEP_PX) & ~keep).any()
        assert not (keep & ~dilate(roi, KEEP_PX + 3)).any()
        assert (keep & ~dilate(roi, KEEP_PX)).any()  # the superset is not exact by chance
    assert not keep_mask(None, (8, 9)).any() and not keep_mask(np.zeros((8, 9), bool), (8, 9)).any()


def test_codec_shares_the_keep_mask_across_points_without_changing_pixels(
        coco_root):
    """The ROI variant grows the ROI once per image: each point
    it codes is the bitstream of the freshly pre-filtered picture."""
    sample = next(iter(CocoDataset(coco_root, "val2017", limit=1)))
    codec, inner = create_codec("jpeg", roi_method="blur"), create_codec("jpeg")
    grown = []
    for quality in codec.qualities[::3]:
        sigma = codec.sigmas[codec._inner_quality[quality]]
        fresh = simplify_background(sample.image, sample.roi, sigma)
        assert codec.encode(sample.image, sample.roi, quality) == \
            inner.encode(fresh, None, codec._inner_quality[quality])
        grown.append(codec._keep)
    assert len(grown) >= 3 and all(k is grown[0] for k in grown)  # grown once, then shared


def test_grid_pairs_each_point_with_a_weaker_blur_towards_high_rate():
    codec = create_codec("jpeg", roi_method="blur")
    assert isinstance(codec, PrefilteredCodec) and codec.uses_roi and codec.name == "jpeg"
    sigmas = list(codec.sigmas.values())
    assert sigmas[0] == 8.0 and sigmas[-1] == 1.0 and sigmas == sorted(sigmas, reverse=True)
    assert codec.qualities[0] == "q3-b8" and codec.qualities[-1] == "q90-b1"
    assert "roi-gt-prefilter-blur" in codec.version()
    assert codec.version().startswith(create_codec("jpeg").version())
    pred = create_codec("jpeg", roi_method="blur", roi_source="m-1-s0.1-d4")
    assert pred.version() != codec.version()
    with pytest.raises(ValueError, match="codes the ROI itself"):
        create_codec("ggm", roi_method="blur")


def _rate_psnrs(codec, samples, quality):
    bits = pixels = 0
    roi_psnr, bg_psnr = [], []
    for s in samples:
        data = codec.encode(s.image, s.roi, quality)
        _, r, b, _ = region_psnrs(s.image, codec.decode(data), s.roi)
        bits += 8 * len(data)
        pixels += s.image.shape[0] * s.image.shape[1]
        roi_psnr.append(r)
        bg_psnr.append(b)
    return bits / pixels, float(np.mean(roi_psnr)), float(np.mean(bg_psnr))


@pytest.mark.parametrize("name", ["jpeg", "webp", "hevc",
                                  pytest.param("vvc", marks=pytest.mark.slow)])
def test_roi_variant_beats_uniform_on_the_roi_at_equal_rate(coco_root, name):
    """At one grid point the blur variant's ROI-PSNR is above the uniform codec's at the same
    rate (log-rate interpolation between uniform grid points) and its background PSNR below."""
    samples = [s for s in CocoDataset(coco_root, "val2017", limit=30)
               if s.roi is not None and 0.1 <= s.roi.mean() <= 0.6][:4]
    uniform, variant = create_codec(name), create_codec(name, roi_method="blur")
    mid = len(uniform.qualities) // 2
    rate, roi_psnr, bg_psnr = _rate_psnrs(variant, samples, variant.qualities[mid])
    curve = [_rate_psnrs(uniform, samples, q) for q in uniform.qualities[mid - 2:mid + 1]]
    rates = np.log([c[0] for c in curve])
    assert rates[0] <= np.log(rate) <= rates[-1]  # the variant's rate is inside the curve
    uni_roi = float(np.interp(np.log(rate), rates, [c[1] for c in curve]))
    uni_bg = float(np.interp(np.log(rate), rates, [c[2] for c in curve]))
    print(f"{name} {variant.qualities[mid]}: {rate:.3f} bpp, ROI {roi_psnr:.2f} vs {uni_roi:.2f}"
          f" dB, background {bg_psnr:.2f} vs {uni_bg:.2f} dB")
    assert rate < curve[-1][0]  # cheaper than the uniform codec at the same codec quality
    assert roi_psnr > uni_roi + 0.2 and bg_psnr < uni_bg


def test_run_labels_and_third_party_codec_gets_the_prefilter(coco_root, tmp_path, capsys):
    rd = tmp_path / "run"
    base = ["run", "--no-progress", "--limit", "1", "--metrics", "psnr", "--data-root",
            str(coco_root), "--run-dir", str(rd)]
    assert main([*base, "--codec", "jpeg", "--roi-method", "blur", "--quality", "q50-b2.2"]) == 0
    assert "jpeg@roi-gt-blur" in capsys.readouterr().out
    assert main([*base, "--codec", "jpeg", "--roi", "none", "--roi-method", "blur"]) == 2
    assert "--roi-method needs an ROI" in capsys.readouterr().err

    site = _plugin_env(tmp_path, "[bench.codecs]\nraw = mycodec:Raw\n")
    code = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(site)!r})
        from bench.cli import main
        sys.exit(main({[*base, "--codec", "raw", "--roi-method", "blur"]!r}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "raw@roi-gt-blur" in out.stdout and "only-b2.8" in out.stdout


@pytest.mark.parametrize("sigma", [1.0, 1.7, 3.3, 4.4, 8.0])
def test_low_pass_blurs_by_about_the_asked_sigma(sigma):
    """The down/up-sampled blur spreads a line like a Gaussian of that sigma (second moment
    about the line within 20 % of sigma², averaged over the line's phase against the
    down-sampling grid, which may move it by up to half a down-sampled cell, at most
    sigma / 2) and keeps a flat picture flat."""
    from bench.roi_prefilter import low_pass

    flat = np.full((64, 80, 3), 117, np.uint8)
    assert np.array_equal(low_pass(flat, sigma), flat)
    xs = np.arange(128)
    moments = []
    for phase in range(8):
        image = np.zeros((32, 128, 3), np.uint8)
        image[:, 50 + phase] = 255  # a vertical line far from the borders
        out = low_pass(image, sigma)[16, :, 0].astype(float)
        mass = out.sum()
        assert abs(mass - 255) < 8  # what the line had, up to rounding
        shift = (out * xs).sum() / mass - (50 + phase)
        assert abs(shift) <= max(0.5, sigma / 2) + 0.01
        moments.append((out * (xs - 50 - phase) ** 2).sum() / mass)
    assert abs(np.mean(moments) / sigma**2 - 1) < 0.2, moments


def test_a_reused_roi_array_changed_in_place_is_grown_again():
    """The codec grows the ROI once per image, recognised by content, not by the array
    object, so a caller that refills one ROI array for each image gets the right keep mask."""
    image = natural_image(96, 128, seed=2)
    codec, inner = create_codec("jpeg", roi_method="blur"), create_codec("jpeg")
    quality = codec.qualities[0]
    sigma = codec.sigmas[codec._inner_quality[quality]]
    roi = np.zeros((96, 128), bool)
    for box in ((slice(0, 20), slice(0, 30)), (slice(60, 90), slice(90, 120))):
        roi[:] = False
        roi[box] = True
        fresh = inner.encode(simplify_background(image, roi, sigma), None,
                             codec._inner_quality[quality])
        assert codec.encode(image, roi, quality) == fresh
