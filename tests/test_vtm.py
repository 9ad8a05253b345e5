"""The VTM wrapper: discovery, the exact VCM anchor command lines and the YUV plumbing.

Everything but the last test runs without VTM: command lines are built and inspected, and
stand-in EncoderApp/DecoderApp scripts (which copy the YUV through) check padding, 10-bit
files, the picture header and cropping. The real end-to-end test runs only when
``BENCH_VTM_DIR`` points at a VTM build.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.codecs import colour
from bench.codecs.base import CodecError, CodecUnavailable
from bench.codecs.vtm import INTRA_CFG, VtmCodec

REPO = Path(__file__).resolve().parents[1]

FAKE_ENCODER = """
import sys
if "--help" in sys.argv:
    print("VVCSoftware: VTM Encoder Version 99.1 [Linux][GCC][64 bit]")
    sys.exit(1)
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--"))
data = open(args["InputFile"], "rb").read()
open(args["BitstreamFile"], "wb").write(b"FAKE" + data)
"""

FAKE_DECODER = """
import sys
argv = sys.argv[1:]
data = open(argv[argv.index("-b") + 1], "rb").read()
assert data[:4] == b"FAKE" and argv[argv.index("-d") + 1] == "10"
open(argv[argv.index("-o") + 1], "wb").write(data[4:])
"""


def write_script(path: Path, body: str, python: bool = True) -> Path:
    """An executable stand-in program at ``path``."""
    shebang = f"#!{sys.executable}\n" if python else "#!/bin/sh\n"
    path.write_text(shebang + body)
    path.chmod(0o755)
    return path


@pytest.fixture
def fake_vtm(tmp_path: Path) -> Path:
    """A VTM-like tree: bin/ with stand-in programs, cfg/ with the intra configuration."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / INTRA_CFG).write_text("IntraPeriod : 1\n")
    write_script(tmp_path / "bin" / "EncoderApp", FAKE_ENCODER)
    write_script(tmp_path / "bin" / "DecoderApp", FAKE_DECODER)
    return tmp_path / "bin"


@pytest.fixture(autouse=True)
def no_vtm_env(monkeypatch):
    """Tests start without BENCH_VTM_* unless they set them (the real run reads them first)."""
    real = os.environ.get("BENCH_VTM_DIR"), os.environ.get("BENCH_VTM_CFG")
    monkeypatch.delenv("BENCH_VTM_DIR", raising=False)
    monkeypatch.delenv("BENCH_VTM_CFG", raising=False)
    return real


# --------------------------------------------------------------------------- discovery


def test_unconfigured_vtm_is_unavailable_with_a_reason():
    codec = VtmCodec()
    assert "BENCH_VTM_DIR" in codec.availability()
    with pytest.raises(CodecUnavailable, match="BENCH_VTM_DIR"):
        codec.encode(np.zeros((4, 4, 3), np.uint8), None, "qp47")
    assert "VTM unavailable" in codec.version()


def test_folder_without_binaries(tmp_path):
    assert "EncoderApp not found" in VtmCodec(vtm_dir=tmp_path).availability()


def test_missing_cfg(fake_vtm):
    (fake_vtm.parent / "cfg" / INTRA_CFG).unlink()
    assert INTRA_CFG in VtmCodec(vtm_dir=fake_vtm).availability()


def test_discovery_from_env_and_default_cfg(fake_vtm, monkeypatch, tmp_path):
    monkeypatch.setenv("BENCH_VTM_DIR", str(fake_vtm))
    codec = VtmCodec()
    assert codec.availability() is None
    assert codec.cfg == fake_vtm.parent / "cfg" / INTRA_CFG
    other = tmp_path / "my.cfg"
    other.write_text("x\n")
    monkeypatch.setenv("BENCH_VTM_CFG", str(other))
    assert VtmCodec().cfg == other
    assert VtmCodec(cfg=fake_vtm.parent / "cfg" / INTRA_CFG).cfg.name == INTRA_CFG


@pytest.mark.parametrize("layout", ["bin", "bin/umake/gcc-13.2/x86_64/release"])
def test_cfg_found_from_both_standard_build_layouts(tmp_path, layout):
    """VTM's source tree: cfg/ at the root; programs copied to bin/ and built by cmake into
    bin/umake/gcc-*/x86_64/release (five levels below the root)."""
    root = tmp_path / "VVCSoftware_VTM"
    (root / "cfg").mkdir(parents=True)
    (root / "cfg" / INTRA_CFG).write_text("IntraPeriod : 1\n")
    programs = root / layout
    programs.mkdir(parents=True, exist_ok=True)
    write_script(programs / "EncoderApp", FAKE_ENCODER)
    write_script(programs / "DecoderApp", FAKE_DECODER)
    codec = VtmCodec(vtm_dir=programs)
    assert codec.cfg == root / "cfg" / INTRA_CFG and codec.availability() is None


def test_cfg_search_stops_five_levels_up(tmp_path):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / INTRA_CFG).write_text("x\n")
    deep = tmp_path / "a" / "b" / "c" / "d" / "e" / "f"
    deep.mkdir(parents=True)
    assert VtmCodec(vtm_dir=deep).cfg is None  # six levels: not VTM's layout
    assert VtmCodec(vtm_dir=deep.parent).cfg == tmp_path / "cfg" / INTRA_CFG


def test_vtm_dir_flag_of_bench_codecs_and_run(fake_vtm, capsys, tmp_path, monkeypatch):
    from bench.cli import main

    # the flag sets $BENCH_VTM_DIR in this process: let monkeypatch remove it afterwards
    monkeypatch.setenv("BENCH_VTM_DIR", str(tmp_path))

    assert main(["codecs", "vtm", "--vtm-dir", str(fake_vtm)]) == 0
    out = capsys.readouterr().out
    assert "vtm: available" in out and "VTM 99.1" in out
    assert main(["codecs", "vtm", "--vtm-dir", str(tmp_path / "nope")]) == 2
    assert "--vtm-dir" in capsys.readouterr().err
    assert main(["run", "--codec", "vtm", "--vtm-dir", str(tmp_path / "nope")]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_version_names_vtm_cfg_hash_preset_and_grid(fake_vtm):
    text = VtmCodec(vtm_dir=fake_vtm).version()
    assert "VTM 99.1" in text and f"cfg={INTRA_CFG} sha256:" in text
    assert "preset=vcm" in text and "--InternalBitDepth=10" in text
    assert "qp47=47" in text and "qp22=22" in text and "yuv420p10le bt601 tv" in text


# --------------------------------------------------------------------------- command lines


def test_grid_is_the_vcm_anchor_qps_low_to_high_rate():
    codec = VtmCodec()
    assert codec.qualities == ("qp47", "qp42", "qp37", "qp32", "qp27", "qp22")
    assert [codec.parse_quality(q) for q in codec.qualities] == [47, 42, 37, 32, 27, 22]


def test_vcm_encoder_argv_is_exact_without_binaries():
    codec = VtmCodec(vtm_dir="/opt/vtm/bin", cfg="/opt/vtm/cfg/encoder_intra_vtm.cfg")
    argv = codec.build_encoder_argv("in.yuv", "out.266", 640, 426, 37)
    assert argv == [
        "/opt/vtm/bin/EncoderApp", "-c", "/opt/vtm/cfg/encoder_intra_vtm.cfg",
        "--InputFile=in.yuv", "--BitstreamFile=out.266",
        "--SourceWidth=640", "--SourceHeight=426",
        "--InputBitDepth=10", "--InternalBitDepth=10", "--OutputBitDepth=10",
        "--InputChromaFormat=420", "--ConformanceWindowMode=1",
        "--FrameRate=1", "--FramesToBeEncoded=1", "--ReconFile=", "--QP=37",
    ]  # fmt: skip
    assert codec.build_decoder_argv("out.266", "rec.yuv") == [
        "/opt/vtm/bin/DecoderApp", "-b", "out.266", "-o", "rec.yuv", "-d", "10",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="even"):
        codec.build_encoder_argv("in.yuv", "out.266", 641, 426, 37)


def test_unknown_preset_and_quality():
    with pytest.raises(ValueError, match="vcm"):
        VtmCodec(preset="fast")
    with pytest.raises(ValueError, match="qp47"):
        VtmCodec().check_quality("qp12")
    assert VtmCodec(extra_qualities=("qp12",)).check_quality("qp12") == "qp12"


# --------------------------------------------------------------------------- YUV plumbing


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (17, 31), (426, 640)])
def test_pipeline_with_stand_in_programs(fake_vtm, shape):
    """Padding to even size, 10-bit planar files, header and cropping, bpp on original size."""
    codec = VtmCodec(vtm_dir=fake_vtm)
    image = np.random.default_rng(5).integers(0, 256, (*shape, 3), np.uint8)
    data = codec.encode(image, None, "qp37")
    even = (shape[0] + shape[0] % 2, shape[1] + shape[1] % 2)
    header = len(data) - 4 - colour.frame_bytes(*even, 10)
    assert 3 <= header <= 7  # header + "FAKE" + one padded 10-bit frame, nothing else
    assert "--QP=37" in codec.last_command
    assert f"--SourceWidth={even[1]}" in codec.last_command
    recon = codec.decode(data)
    spec = colour.ColourSpec(bit_depth=10)
    expected = colour.yuv420_to_rgb(colour.rgb_to_yuv420(colour.pad_even(image), spec), spec)
    assert np.array_equal(recon, expected[: shape[0], : shape[1]])


def test_crashing_encoder_names_program_code_and_stderr(fake_vtm):
    write_script(fake_vtm / "EncoderApp", "echo 'ERROR: bad config' >&2\nexit 2", python=False)
    codec = VtmCodec(vtm_dir=fake_vtm)
    with pytest.raises(CodecError) as info:
        codec.encode(np.zeros((8, 8, 3), np.uint8), None, "qp22")
    message = str(info.value)
    assert "EncoderApp" in message and "exit code 2" in message and "bad config" in message


def test_hanging_encoder_times_out(fake_vtm):
    write_script(fake_vtm / "EncoderApp", "echo 'encoding' >&2\nsleep 30", python=False)
    codec = VtmCodec(vtm_dir=fake_vtm, timeout=1)
    start = time.monotonic()
    with pytest.raises(CodecError, match="timed out after 1 s"):
        codec.encode(np.zeros((8, 8, 3), np.uint8), None, "qp22")
    assert time.monotonic() - start < 10


# --------------------------------------------------------------------------- real VTM


@pytest.mark.slow
def test_real_vtm_end_to_end(no_vtm_env, monkeypatch):
    vtm_dir, vtm_cfg = no_vtm_env
    if not vtm_dir:
        pytest.skip("BENCH_VTM_DIR is not set: no VTM build to run end to end")
    monkeypatch.setenv("BENCH_VTM_DIR", vtm_dir)
    if vtm_cfg:
        monkeypatch.setenv("BENCH_VTM_CFG", vtm_cfg)
    codec = VtmCodec()
    reason = codec.availability()
    assert reason is None, reason
    kodak = Path(os.environ.get("BENCH_KODAK_DIR") or REPO.parent / "shared" / "data" / "kodak")
    path = kodak / "kodim23.png"
    if path.is_file():
        with Image.open(path) as im:
            image = np.ascontiguousarray(np.asarray(im.convert("RGB"))[128:256, 256:384])
    else:
        image = np.random.default_rng(6).integers(0, 256, (64, 96, 3), np.uint8)
    image = image[:-1, :-1]  # odd size: exercises padding and the conformance window
    sizes, psnrs = [], []
    for quality in ("qp47", "qp22"):
        data = codec.encode(image, None, quality)
        recon = codec.decode(data)
        assert recon.shape == image.shape
        sizes.append(len(data))
        psnrs.append(colour.psnr(image, recon))
    assert sizes[0] < sizes[1] and psnrs[0] < psnrs[1]
    if path.is_file():
        assert psnrs[1] >= 38.0
