"""The VTM wrapper: discovery, the exact VCM anchor procedure and the YUV plumbing.

Everything but the last two tests runs without VTM: command lines are built and inspected,
and stand-in EncoderApp/DecoderApp scripts (which pass the YUV through losslessly, as VTM
would at its internal 10 bits) check padding, the colour conversions against the anchor
scripts' ffmpeg commands, the picture header and cropping. The real tests (end to end, and
the ``vcm`` bitstream byte for byte against the anchor procedure run by hand) run only when
``BENCH_VTM_DIR`` points at a VTM build.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.codecs import colour
from bench.codecs._ffmpeg import default_ffmpeg_path, unpack_header
from bench.codecs.base import CodecError, CodecUnavailable
from bench.codecs.vtm import INTRA_CFG, VtmCodec
from tests.conftest import shared_kodak_dir

FAKE_ENCODER = """
import sys
if "--help" in sys.argv:
    print("VVCSoftware: VTM Encoder Version 99.1 [Linux][GCC][64 bit]")
    sys.exit(1)
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--"))
data = open(args["InputFile"], "rb").read()
depth = int(args["InputBitDepth"])
open(args["BitstreamFile"], "wb").write(b"FAKE" + bytes([depth]) + data)
"""

FAKE_DECODER = """
import sys
argv = sys.argv[1:]
data = open(argv[argv.index("-b") + 1], "rb").read()
assert data[:4] == b"FAKE" and argv[argv.index("-d") + 1] == "10"
samples = data[5:]
if data[4] == 8:  # VTM codes 8-bit input at its internal 10 bits: samples * 4
    samples = b"".join((b << 2).to_bytes(2, "little") for b in samples)
open(argv[argv.index("-o") + 1], "wb").write(samples)
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


def test_vtm_preset_flag_labels_the_codec(fake_vtm, capsys, tmp_path, tiny_coco, monkeypatch):
    from bench.cli import main
    from bench.cli.codecs_cmd import VTM_PRESETS
    from bench.codecs.vtm import PRESETS

    assert set(VTM_PRESETS) == set(PRESETS)
    # --vtm-dir sets $BENCH_VTM_DIR in this process: let monkeypatch remove it afterwards
    monkeypatch.setenv("BENCH_VTM_DIR", str(tmp_path))
    assert main(["codecs", "vtm", "--vtm-dir", str(fake_vtm), "--vtm-preset", "limited10"]) == 0
    assert "preset=limited10" in capsys.readouterr().out
    run = ["run", "--codec", "vtm", "--vtm-dir", str(fake_vtm), "--data-root", str(tiny_coco),
           "--run-dir", str(tmp_path / "run"), "--quality", "qp47", "--jobs", "1"]  # fmt: skip
    assert main([*run, "--vtm-preset", "limited10"]) == 0
    assert main(run) == 0
    out = capsys.readouterr().out
    assert "vtm@preset-limited10" in out and "vtm " in out


def test_version_names_vtm_cfg_hash_preset_and_grid(fake_vtm):
    text = VtmCodec(vtm_dir=fake_vtm).version()
    assert "VTM 99.1" in text and f"cfg={INTRA_CFG} sha256:" in text
    assert "preset=vcm" in text and "--InputBitDepth=8 --InternalBitDepth=10" in text
    assert "qp47=47" in text and "qp22=22" in text
    assert "yuv420p bt601 pc pad black via ffmpeg n" in text and "-color_range pc" in text
    text = VtmCodec(vtm_dir=fake_vtm, preset="limited10").version()
    assert "preset=limited10" in text and "yuv420p10le bt601 tv pad edge via bench" in text


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
        "--InputBitDepth=8", "--InternalBitDepth=10",
        "--InputChromaFormat=420", "--ConformanceWindowMode=1",
        "--FrameRate=1", "--FramesToBeEncoded=1", "--ReconFile=", "--QP=37",
    ]  # fmt: skip
    limited = VtmCodec(vtm_dir="/opt/vtm/bin", cfg="/c.cfg", preset="limited10")
    assert limited.build_encoder_argv("in.yuv", "out.266", 640, 426, 37)[7:10] == [
        "--InputBitDepth=10", "--InternalBitDepth=10", "--OutputBitDepth=10",
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


def ffmpeg(*args: str) -> None:
    """Run the shipped ffmpeg with ``args`` (argument list, quiet), as the anchor scripts do."""
    argv = [default_ffmpeg_path(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
    subprocess.run([*argv, *args], check=True, capture_output=True, timeout=60)


def anchor_yuv(image: np.ndarray, folder: Path) -> bytes:
    """Steps 1-2 of the VCM anchor scripts on ``image`` saved as PNG: ffmpeg's pad filter to
    even size, then ffmpeg's conversion to 8-bit full-range 4:2:0. ``-dst_range 1`` is the
    scripts' spelling (honoured by ffmpeg 4); ffmpeg 9 ignores it and needs
    ``-color_range pc`` for the full range the scripts ask for."""
    Image.fromarray(image).save(folder / "img.png")
    ffmpeg("-i", str(folder / "img.png"), "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2",
           str(folder / "pad.png"))  # fmt: skip
    ffmpeg("-i", str(folder / "pad.png"), "-f", "rawvideo", "-pix_fmt", "yuv420p",
           "-dst_range", "1", "-color_range", "pc", str(folder / "in.yuv"))  # fmt: skip
    return (folder / "in.yuv").read_bytes()


def anchor_rgb(yuv10: bytes, height: int, width: int, folder: Path) -> np.ndarray:
    """Step 5 of the anchor scripts, with the full range they intend (``-color_range pc``)
    and the crop of step 6: 10-bit 4:2:0 reconstruction -> RGB of the original size."""
    h2, w2 = height + height % 2, width + width % 2
    (folder / "rec.yuv").write_bytes(yuv10)
    ffmpeg("-f", "rawvideo", "-pix_fmt", "yuv420p10le", "-s", f"{w2}x{h2}", "-color_range",
           "pc", "-i", str(folder / "rec.yuv"), "-frames:v", "1", "-pix_fmt", "rgb24",
           str(folder / "rec.png"))  # fmt: skip
    with Image.open(folder / "rec.png") as im:
        return np.asarray(im.convert("RGB"))[:height, :width]


#: The real image the tests code where Kodak is here (see :func:`shared_image`).
KODIM23 = shared_kodak_dir() / "kodim23.png"


def shared_image(shape: tuple[int, int]) -> np.ndarray:
    """A ``shape`` crop of Kodak's kodim23 (random pixels where Kodak is not here)."""
    path = KODIM23
    if not path.is_file():
        return np.random.default_rng(6).integers(0, 256, (*shape, 3), np.uint8)
    with Image.open(path) as im:
        image = np.asarray(im.convert("RGB"))
    return np.ascontiguousarray(image[100 : 100 + shape[0], 200 : 200 + shape[1]])


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (17, 31), (426, 640)])
def test_limited10_pipeline_with_stand_in_programs(fake_vtm, shape):
    """limited10: edge padding to even size, bench's 10-bit conversion, header, cropping."""
    codec = VtmCodec(vtm_dir=fake_vtm, preset="limited10")
    image = np.random.default_rng(5).integers(0, 256, (*shape, 3), np.uint8)
    data = codec.encode(image, None, "qp37")
    even = (shape[0] + shape[0] % 2, shape[1] + shape[1] % 2)
    header = len(data) - 5 - colour.frame_bytes(*even, 10)
    assert 3 <= header <= 7  # header + "FAKE"+depth + one padded 10-bit frame, nothing else
    assert "--QP=37" in codec.last_command
    assert f"--SourceWidth={even[1]}" in codec.last_command
    recon = codec.decode(data)
    spec = colour.ColourSpec(bit_depth=10)
    expected = colour.yuv420_to_rgb(colour.rgb_to_yuv420(colour.pad_even(image), spec), spec)
    assert np.array_equal(recon, expected[: shape[0], : shape[1]])
    assert np.array_equal(VtmCodec(vtm_dir=fake_vtm).decode(data), recon)  # any preset decodes


@pytest.mark.parametrize("shape", [(1, 1), (17, 31), (121, 95)])
def test_vcm_input_and_output_follow_the_anchor_scripts(fake_vtm, tmp_path, shape):
    """vcm: EncoderApp gets exactly the YUV of the anchor scripts' ffmpeg steps (black
    padding, 8-bit full range), and the reconstruction is their full-range conversion back."""
    codec = VtmCodec(vtm_dir=fake_vtm)
    image = shared_image(shape)
    data = codec.encode(image, None, "qp37")
    even = (shape[0] + shape[0] % 2, shape[1] + shape[1] % 2)
    yuv8 = anchor_yuv(image, tmp_path)
    assert len(yuv8) == colour.frame_bytes(*even, 8)
    assert data.endswith(b"FAKE\x08" + yuv8)
    assert 3 <= len(data) - 5 - len(yuv8) <= 7
    assert f"--SourceWidth={even[1]}" in codec.last_command
    recon = codec.decode(data)
    samples = np.frombuffer(yuv8, np.uint8).astype("<u2") << 2
    assert np.array_equal(recon, anchor_rgb(samples.tobytes(), *shape, tmp_path))
    assert np.array_equal(VtmCodec(vtm_dir=fake_vtm, preset="limited10").decode(data), recon)


def test_vcm_uses_full_range_and_black_padding(fake_vtm):
    """White stays 255 and black 0 through the 8-bit full-range path (limited range would
    code white as Y 235); the padded column is black (Y 0), not a copy of the edge."""
    codec = VtmCodec(vtm_dir=fake_vtm)
    image = np.full((4, 5, 3), 255, np.uint8)
    image[:, :2] = 0
    data = codec.encode(image, None, "qp22")
    y = np.frombuffer(data[-colour.frame_bytes(4, 6, 8) :][:24], np.uint8).reshape(4, 6)
    assert (y[:, :2] == 0).all() and (y[:, 2:5] == 255).all() and (y[:, 5] == 0).all()
    assert np.array_equal(codec.decode(data), image)


def test_stream_of_an_unknown_colour_format_is_rejected(fake_vtm):
    codec = VtmCodec(vtm_dir=fake_vtm)
    data = bytearray(codec.encode(np.zeros((4, 4, 3), np.uint8), None, "qp22"))
    data[0] ^= 0x01  # BT.709: no vtm preset makes it
    with pytest.raises(CodecError, match="no vtm preset"):
        codec.decode(bytes(data))


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


@pytest.fixture
def real_vtm(no_vtm_env, monkeypatch) -> None:
    """The VTM build named by the environment the tests started with, or a skip."""
    vtm_dir, vtm_cfg = no_vtm_env
    if not vtm_dir:
        pytest.skip("BENCH_VTM_DIR is not set: no VTM build to run against")
    monkeypatch.setenv("BENCH_VTM_DIR", vtm_dir)
    if vtm_cfg:
        monkeypatch.setenv("BENCH_VTM_CFG", vtm_cfg)
    reason = VtmCodec().availability()
    assert reason is None, reason


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["vcm", "limited10"])
def test_real_vtm_end_to_end(real_vtm, preset):
    codec = VtmCodec(preset=preset)
    image = shared_image((127, 127))  # odd size: exercises padding and the conformance window
    sizes, psnrs = [], []
    for quality in ("qp47", "qp22"):
        data = codec.encode(image, None, quality)
        recon = codec.decode(data)
        assert recon.shape == image.shape
        sizes.append(len(data))
        psnrs.append(colour.psnr(image, recon))
    assert sizes[0] < sizes[1] and psnrs[0] < psnrs[1]
    if KODIM23.is_file():
        assert psnrs[1] >= 38.0


@pytest.mark.slow
def test_real_vtm_vcm_bitstream_equals_the_anchor_procedure(real_vtm, tmp_path):
    """The vcm preset's bitstream equals, byte for byte, the anchor scripts' procedure run
    by hand: ffmpeg's pad and 8-bit full-range conversion, then EncoderApp with the
    scripts' own options (``-o`` reconstruction included)."""
    codec = VtmCodec()
    image = shared_image((121, 95))
    data = codec.encode(image, None, "qp32")
    _, height, width, offset = unpack_header(data)
    assert (height, width) == image.shape[:2]
    anchor_yuv(image, tmp_path)
    argv = [
        str(codec.encoder_path), "-c", str(codec.cfg), "-i", str(tmp_path / "in.yuv"),
        "-b", str(tmp_path / "anchor.bin"), "-o", str(tmp_path / "tmp.yuv"),
        "-fr", "1", "-f", "1", "-wdt", "96", "-hgt", "122", "-q", "32",
        "--ConformanceWindowMode=1", "--InternalBitDepth=10",
    ]  # fmt: skip
    subprocess.run(argv, check=True, capture_output=True, cwd=tmp_path, timeout=600)
    assert data[offset:] == (tmp_path / "anchor.bin").read_bytes()
