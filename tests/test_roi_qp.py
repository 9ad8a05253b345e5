"""ROI through the encoder's own rate control (``--roi-method qp``): the block map, the
``addroi`` chain, and real x265 coding real shared images through the shipped ffmpeg."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from bench.cli import main
from bench.codecs import roi_qp
from bench.codecs.hevc import ROI_QP_DELTA
from bench.data.coco import CocoDataset
from bench.registry import create_codec
from tests.test_roi_prefilter import _rate_psnrs


def test_blocks_hold_any_roi_pixel_and_padding_is_background():
    roi = np.zeros((33, 40), bool)
    roi[0, 0] = roi[17, 39] = True
    blocks = roi_qp.roi_blocks(roi, 34, 48, 16)
    assert blocks.shape == (3, 3)
    assert blocks.tolist() == [[True, False, False], [False, False, True], [False] * 3]
    assert not roi_qp.roi_blocks(None, 34, 48, 16).any()
    assert not roi_qp.roi_blocks(np.zeros((34, 48), bool), 34, 48, 16).any()


@pytest.mark.parametrize("seed", range(6))
def test_rectangles_cover_exactly_the_roi_blocks_without_overlap(seed):
    rng = np.random.default_rng(seed)
    blocks = rng.random((9, 13)) < [0.1, 0.4, 0.8][seed % 3]
    blocks[2:6, 3:8] = seed % 2 == 0  # a solid object, or a hole
    painted = np.zeros(blocks.shape, int)
    rects = roi_qp.block_rectangles(blocks)
    for c, r, n, m in rects:
        assert n >= 1 and m >= 1
        painted[r : r + m, c : c + n] += 1
    assert np.array_equal(painted, blocks.astype(int))
    assert len(rects) <= blocks.sum()


def test_identical_runs_merge_down_the_rows():
    blocks = np.zeros((9, 13), bool)
    blocks[2:6, 3:8] = True
    blocks[4, 10] = True
    assert roi_qp.block_rectangles(blocks) == [(3, 2, 5, 4), (10, 4, 1, 1)]


def test_addroi_chain_lists_the_roi_first_and_the_background_last():
    roi = np.zeros((40, 50), bool)
    roi[20:40, 34:50] = True  # reaches the right and bottom edges of a 40 x 50 picture
    chain = roi_qp.addroi_filter(roi, 40, 50, 12, 63, block=16).split(",")
    assert chain[-1] == "addroi=x=0:y=0:w=iw:h=ih:qoffset=4/21"  # 12/63: x265 scales by 63
    assert Fraction(4, 21) * 63 == 12
    assert chain[:-1] == [
        "addroi=x=32:y=16:w=18:h=24:qoffset=0",  # clipped to the picture
    ]
    # the default: whole 32x32 quantisation groups of x265
    assert roi_qp.addroi_filter(roi, 40, 50, 12, 63).split(",")[:-1] == [
        "addroi=x=32:y=0:w=18:h=40:qoffset=0",
    ]
    assert roi_qp.addroi_filter(None, 40, 50, 12, 63) == chain[-1]
    with pytest.raises(ValueError, match="outside"):
        roi_qp.addroi_filter(roi, 40, 50, 70, 63)


def test_hevc_qp_variant_grid_version_and_errors():
    codec = create_codec("hevc", roi_method="qp")
    uniform = create_codec("hevc")
    assert codec.uses_roi and not uniform.uses_roi
    assert codec.qualities == tuple(f"{q}-d{ROI_QP_DELTA}" for q in uniform.qualities)
    assert [codec.parse_quality(q) for q in codec.qualities] == [
        uniform.parse_quality(q) for q in uniform.qualities
    ]
    assert "roi-gt-qp" in codec.version() and "aq-mode=1" in codec.version()
    assert "roi-gt" not in uniform.version()
    pred = create_codec("hevc", roi_method="qp", roi_source="m-1-s0.1-d4")
    assert "roi-pred-m-1-s0.1-d4-qp" in pred.version()
    with pytest.raises(ValueError, match="codecs with it: hevc"):
        create_codec("jpeg", roi_method="qp")


def test_hevc_background_offset_names_its_points_version_and_stream():
    """Another background offset is another codec version with its own point names, and
    the offset reaches x265's addroi chain; offsets that cannot apply are refused."""
    codec = create_codec("hevc", roi_method="qp", roi_qp_delta=8)
    default = create_codec("hevc", roi_method="qp")
    assert codec.qualities[2] == "qp37-d8" and default.qualities[2] == f"qp37-d{ROI_QP_DELTA}"
    assert "background +8 QP" in codec.version() and codec.version() != default.version()
    assert create_codec("hevc", roi_method="qp", roi_qp_delta=ROI_QP_DELTA).version() == (
        default.version())
    roi = np.zeros((64, 64), bool)
    roi[:32, :32] = True
    chain = codec.roi_args(roi, 64, 64, "qp37-d8")[1]
    assert chain.endswith("qoffset=8/63") and default.roi_args(roi, 64, 64, "qp37-d16")[
        1].endswith("qoffset=16/63")
    for bad in (0, 52, -4, 8.0, True):
        with pytest.raises(ValueError, match="from 1 to 51"):
            create_codec("hevc", roi_method="qp", roi_qp_delta=bad)
    with pytest.raises(ValueError, match="needs the qp ROI method"):
        create_codec("hevc", roi_qp_delta=8)


def test_hevc_qp_variant_beats_uniform_on_the_roi_at_equal_rate(coco_root):
    """Real x265: at one grid point the ROI variant's ROI-PSNR is above the uniform codec's at
    the same rate (log-rate interpolation) and its background PSNR below; an all-ROI mask
    codes like the uniform codec (the AQ it needs changes the stream size by under 1 %)."""
    samples = [
        s
        for s in CocoDataset(coco_root, "val2017", limit=30)
        if s.roi is not None and 0.1 <= s.roi.mean() <= 0.6
    ][:4]
    uniform, variant = create_codec("hevc"), create_codec("hevc", roi_method="qp")
    rate, roi_psnr, bg_psnr = _rate_psnrs(variant, samples, f"qp32-d{ROI_QP_DELTA}")
    curve = [_rate_psnrs(uniform, samples, q) for q in ("qp37", "qp32")]
    rates = np.log([c[0] for c in curve])
    assert rates[0] <= np.log(rate) <= rates[-1]
    uni_roi = float(np.interp(np.log(rate), rates, [c[1] for c in curve]))
    uni_bg = float(np.interp(np.log(rate), rates, [c[2] for c in curve]))
    print(f"hevc qp32-d{ROI_QP_DELTA}: {rate:.3f} bpp, ROI {roi_psnr:.2f} vs {uni_roi:.2f} dB, "
          f"background {bg_psnr:.2f} vs {uni_bg:.2f} dB")  # fmt: skip
    assert roi_psnr > uni_roi + 0.2 and bg_psnr < uni_bg - 1.0

    image = samples[0].image
    full = np.ones(image.shape[:2], bool)
    same = len(variant.encode(image, full, f"qp32-d{ROI_QP_DELTA}"))
    assert abs(same / len(uniform.encode(image, None, "qp32")) - 1) < 0.01
    assert "addroi" in " ".join(variant.last_command)


def test_a_small_object_off_the_quantisation_groups_keeps_the_grid_qp(coco_root):
    """Real x265: a 16x16 object that straddles x265's 32x32 quantisation groups is coded
    at about the uniform codec's quality at the same QP. With 16x16 ROI blocks x265 averaged
    the background's offset into its groups and the object lost 4.3 dB at QP 37."""
    from bench.metrics import region_psnrs

    image = np.ascontiguousarray(CocoDataset(coco_root, "val2017").load(139).image[100:228,
                                                                                   100:228])
    roi = np.zeros(image.shape[:2], bool)
    roi[16:32, 16:32] = True
    uniform, variant = create_codec("hevc"), create_codec("hevc", roi_method="qp")
    plain = region_psnrs(image, uniform.decode(uniform.encode(image, None, "qp37")), roi)[1]
    coded = variant.decode(variant.encode(image, roi, f"qp37-d{ROI_QP_DELTA}"))
    assert region_psnrs(image, coded, roi)[1] > plain - 0.5


def test_run_labels_the_native_variant_and_refuses_codecs_without_one(coco_root, tmp_path,
                                                                      capsys):  # fmt: skip
    base = ["run", "--no-progress", "--limit", "1", "--metrics", "psnr", "--data-root",
            str(coco_root), "--run-dir", str(tmp_path / "run")]  # fmt: skip
    point = f"qp37-d{ROI_QP_DELTA}"
    assert main([*base, "--codec", "hevc", "--roi-method", "qp", "--quality", point]) == 0
    assert "hevc@roi-gt-qp" in capsys.readouterr().out
    assert main([*base, "--codec", "jpeg", "--roi-method", "qp"]) == 2
    assert "codecs with it: hevc" in capsys.readouterr().err


def test_run_labels_another_background_offset_and_refuses_it_without_qp(coco_root, tmp_path,
                                                                        capsys):  # fmt: skip
    """``--roi-qp-delta 8`` runs a codec of its own beside the default offset in one store;
    the default offset given explicitly is the plain variant; misuse is refused before
    any work (exit 2)."""
    from bench.store import ResultsStore

    run = tmp_path / "run"
    base = ["run", "--no-progress", "--limit", "1", "--metrics", "psnr", "--data-root",
            str(coco_root), "--run-dir", str(run), "--codec", "hevc"]  # fmt: skip
    assert main([*base, "--roi-method", "qp", "--roi-qp-delta", "8",
                 "--quality", "qp37-d8"]) == 0
    assert "hevc@roi-gt-qp@roi_qp_delta-8" in capsys.readouterr().out
    assert main([*base, "--roi-method", "qp", "--roi-qp-delta", str(ROI_QP_DELTA),
                 "--quality", f"qp37-d{ROI_QP_DELTA}"]) == 0
    out = capsys.readouterr().out
    assert "hevc@roi-gt-qp " in out and "roi_qp_delta" not in out
    with ResultsStore(run) as store:
        rows = {(r.label, r.quality) for r in store.results()}
    assert rows == {("hevc@roi-gt-qp@roi_qp_delta-8", "qp37-d8"),
                    ("hevc@roi-gt-qp", f"qp37-d{ROI_QP_DELTA}")}
    assert main([*base, "--roi-qp-delta", "8"]) == 2
    assert "add --roi-method qp" in capsys.readouterr().err
    assert main([*base, "--roi-method", "qp", "--roi-qp-delta", "0"]) == 2
    assert "from 1 to 51" in capsys.readouterr().err


def test_codecs_listing_names_the_encoders_own_roi_method(capsys):
    assert main(["codecs", "hevc"]) == 0
    assert capsys.readouterr().out.startswith("hevc (ROI through its encoder: --roi-method qp)")
    assert main(["codecs", "jpeg"]) == 0
    assert capsys.readouterr().out.startswith("jpeg: ")
