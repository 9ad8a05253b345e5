"""Labels: the rule (a codec's plain name for default options, ``@key-value`` parts otherwise)
and both ROI modes of a real learned codec side by side in one run directory and report."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from bench.cli import main
from bench.labels import codec_label, codec_name, label_for, option_defaults, split_label
from bench.registry import CODECS
from tests.conftest import DETECTOR, shared_model


class _ThirdParty:
    """A constructor like a third-party codec's: options with and without defaults."""

    def __init__(self, level: int, method: str = "blur", sigma: float = 1.0,
                 exact: bool = False, ffmpeg: str | Path | None = None):
        pass


def test_default_options_keep_the_plain_name():
    assert codec_label("jpeg") == "jpeg"
    assert label_for("ggm", {"roi": "gt"}) == "ggm"
    assert label_for("gaussian-roi", {}) == "gaussian-roi"
    assert label_for("jpeg", {}) == "jpeg"


def test_non_default_options_are_appended_in_key_order():
    assert label_for("ggm", {"roi": "none"}) == "ggm@roi-none"
    defaults = option_defaults(_ThirdParty)
    assert defaults == {"method": "blur", "sigma": 1.0, "exact": False, "ffmpeg": None}
    opts = {"sigma": 2.5, "method": "blur", "level": 3, "exact": True}
    # level has no default: always named; method equals its default: left out
    assert codec_label("roi-jpeg", opts, defaults) == "roi-jpeg@exact-true@level-3@sigma-2.5"
    assert codec_label("roi-jpeg", {"sigma": 1}, defaults) == "roi-jpeg"  # 1 == 1.0
    assert codec_label("roi-jpeg", {"exact": 0}, defaults) == "roi-jpeg@exact-0"  # not False
    assert codec_label("c", {"roi": "none"}) == "c@roi-none"  # no defaults known: all named


def test_values_are_escaped_so_labels_split_back():
    opts = {"ffmpeg": Path("/opt/ff mpeg"), "weights": "a@b:c", "grid": (1, 2.5, "x,y")}
    label = codec_label("c", opts)
    assert label == "c@ffmpeg-%2Fopt%2Fff%20mpeg@grid-1,2.5,x%2Cy@weights-a%40b%3Ac"
    assert not set("/: ") & set(label) and label.count("@") == 3
    assert split_label(label) == ("c", {"ffmpeg": "/opt/ff mpeg", "grid": "1,2.5,x,y",
                                        "weights": "a@b:c"})
    assert codec_name(label) == "c" and codec_name("ggm") == "ggm"
    assert split_label("ggm@roi-none") == ("ggm", {"roi": "none"})
    assert codec_label("c", {"x": None, "y": 1e-5}) == "c@x-none@y-1e-05"


def test_bad_names_and_labels_are_refused():
    with pytest.raises(ValueError, match="holds '@'"):
        codec_label("my@codec")
    with pytest.raises(ValueError, match="not an identifier"):
        codec_label("c", {"roi-mode": "none"})
    with pytest.raises(ValueError, match="not key-value"):
        split_label("ggm@roi")


def test_every_registered_codec_has_introspectable_defaults():
    for name in CODECS.names():
        defaults = option_defaults(CODECS.get(name))
        assert codec_label(name, defaults, defaults) == name
    assert option_defaults(CODECS.get("ggm"))["roi"] == "gt"


# ------------------------------------------------------------ both ROI modes in one run dir
@pytest.mark.slow
def test_two_roi_modes_of_ggm_in_one_run_directory(coco_root, tmp_path, capsys):
    """ggm --roi gt and --roi none into one store: two labels, two curves, one BD call."""
    det = shared_model(DETECTOR)
    rd = tmp_path / "run"
    common = ["run", "--no-progress", "--codec", "ggm", "--limit", "2", "--quality", "q1",
              "--quality", "q8", "--metrics", "psnr", "--keep-recon", "--task", "detection",
              "--model", str(det), "--data-root", str(coco_root), "--run-dir", str(rd)]
    assert main([*common, "--roi", "gt"]) == 0
    assert main([*common, "--roi", "none"]) == 0
    out = capsys.readouterr().out
    assert sum(ln.lstrip().startswith("ggm@roi-none ") for ln in out.splitlines()) == 2
    assert main([*common, "--roi", "none"]) == 0  # resumed: nothing left to do
    assert "4 of 4 rows already" in capsys.readouterr().err
    assert main([*common[:-2], "--run-dir", str(rd), "--roi", "gt", "--quality", "ggm:q1"]) == 0
    assert "4 of 4 rows already" in capsys.readouterr().err
    one = next((rd / "recon" / "ggm" / "q1").iterdir())
    other = rd / "recon" / "ggm@roi-none" / "q1" / one.name
    assert one.read_bytes() != other.read_bytes()  # each mode keeps its own reconstructions

    assert main(["report", "--run-dir", str(rd), "--points", "--format", "csv"]) == 0
    pts = pd.read_csv(io.StringIO(capsys.readouterr().out))
    img = pts[pts["task"] == "detection"].set_index(["codec", "quality"])
    assert set(img.index) == {(c, q) for c in ("ggm", "ggm@roi-none") for q in ("q1", "q8")}
    assert img["ap"].notna().all() and set(img["task_images"]) == {2}
    assert "roi-gt" in img.loc[("ggm", "q1"), "codec_version"]
    assert "roi-none" in img.loc[("ggm@roi-none", "q1"), "codec_version"]
    for q in ("q1", "q8"):
        gt, none = img.loc[("ggm", q)], img.loc[("ggm@roi-none", q)]
        assert gt["bpp_pooled"] != none["bpp_pooled"] and gt["roi_psnr"] != none["roi_psnr"]

    assert main(["report", "--run-dir", str(rd), "--anchor", "ggm@roi-none", "--metric",
                 "roi-psnr", "--metric", "det-ap", "--format", "csv"]) == 0
    bd = pd.read_csv(io.StringIO(capsys.readouterr().out)).set_index(["metric", "codec"])
    assert set(bd["anchor"]) == {"ggm@roi-none"}
    assert bd.loc[("roi-psnr", "ggm@roi-none"), "note"] == "anchor"
    gain = bd.loc[("roi-psnr", "ggm")]
    # the ROI mode's gain, one BD call on one store: release 3 gives -29.3 % on these 2
    # pictures (-40.4 % on the 79); about 0 would mean the two modes code alike
    assert gain["bd_rate"] < -10, gain.to_dict()
    assert main(["report", "--run-dir", str(rd), "--codec", "ggm@roi-none", "--anchor",
                 "ggm@roi-none", "--points", "--format", "csv"]) == 0
    assert set(pd.read_csv(io.StringIO(capsys.readouterr().out))["codec"]) == {"ggm@roi-none"}
    board = tmp_path / "board"
    assert main(["report", "--run-dir", str(rd), "--anchor", "ggm", "--leaderboard",
                 str(board)]) == 0
    assert set(pd.read_csv(board / "leaderboard.csv")["codec"]) == {"ggm", "ggm@roi-none"}
