"""The ffmpeg-based anchor codecs (VVC, HEVC, AV1, JPEG 2000, WebP, JPEG XL).

Checked on Kodak crops: the PSNR each codec reaches at its top grid point and at a very high
off-grid point, strictly increasing bpp along the grid, odd sizes (pixels kept in place),
self-contained streams;
and that a missing, crashing or hanging program raises an error naming the program, the exit
code and the tail of its stderr. Corrupt streams: a truncated JPEG XL stream (on which libjxl
loops) fails in seconds leaving no process or folder, decoders get a timeout proportional to
the picture size, and streams declaring absurd sizes are refused before decoding.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.codecs import _ffmpeg, colour
from bench.codecs._ffmpeg import (
    decode_timeout,
    pack_header,
    parse_prefixed,
    run_program,
    stderr_tail,
    unpack_header,
)
from bench.codecs.av1 import Av1Codec
from bench.codecs.base import CodecError, CodecUnavailable
from bench.codecs.hevc import HevcCodec
from bench.codecs.jpeg2000 import Jpeg2000Codec, resolutions_for, strip_comments
from bench.codecs.jpegxl import JpegxlCodec, codestream_size
from bench.codecs.vvc import VvcCodec
from bench.codecs.webp import WebpCodec

REPO = Path(__file__).resolve().parents[1]
CLASSES = {
    "vvc": VvcCodec,
    "hevc": HevcCodec,
    "av1": Av1Codec,
    "jpeg2000": Jpeg2000Codec,
    "webp": WebpCodec,
    "jpegxl": JpegxlCodec,
}

#: Per codec: an off-grid very high quality and the RGB PSNR (dB) it must reach on the Kodak
#: crop, and the PSNR the top grid point must reach. The crop's 4:2:0 colour round trip alone
#: gives 47.3 dB, which caps the 4:2:0 codecs; JPEG 2000 and JPEG XL code RGB directly.
EXPECTED = {
    "vvc": ("qp0", 45.0, 41.0),  # QP 0 at 10-bit internal is near-lossless
    "hevc": ("qp0", 45.0, 41.0),
    "av1": ("crf0", 45.0, 42.0),  # crf 0 is lossless: equals the colour round trip
    "jpeg2000": ("cr2", 50.0, 37.0),  # 12 bpp of the 9/7 wavelet
    "webp": ("q100", 42.0, 40.0),  # VP8's finest quantiser is not lossless
    "jpegxl": ("d0.1", 44.0, 37.0),
}


def kodak_dir() -> Path:
    """$BENCH_KODAK_DIR, default <repo>/../shared/data/kodak."""
    return Path(os.environ.get("BENCH_KODAK_DIR") or REPO.parent / "shared" / "data" / "kodak")


@pytest.fixture(scope="module")
def kodak_crop() -> np.ndarray:
    """A 256x256 crop of kodim23 (parrots: saturated colour, fine detail and flat areas)."""
    path = kodak_dir() / "kodim23.png"
    if not path.is_file():
        pytest.skip(f"Kodak image {path} not found (set BENCH_KODAK_DIR)")
    with Image.open(path) as im:
        return np.ascontiguousarray(np.asarray(im.convert("RGB"))[128:384, 256:512])


def make(name: str, **kwargs):
    """A codec instance, skipping the test when its encoder or decoder is missing here."""
    codec = CLASSES[name](**kwargs)
    reason = codec.availability()
    if reason is not None:
        pytest.skip(f"{name} unavailable: {reason}")
    return codec


def bpp(data: bytes, image: np.ndarray) -> float:
    """Bits per pixel of ``data`` for ``image``."""
    return len(data) * 8 / (image.shape[0] * image.shape[1])


# --------------------------------------------------------------------------- quality


@pytest.mark.parametrize("name", CLASSES)
def test_high_quality_psnr_on_kodak(name, kodak_crop):
    extra, min_extra, min_top = EXPECTED[name]
    codec = make(name, extra_qualities=(extra,))
    assert extra not in codec.qualities
    top = codec.decode(codec.encode(kodak_crop, None, codec.qualities[-1]))
    assert colour.psnr(kodak_crop, top) >= min_top
    best = codec.decode(codec.encode(kodak_crop, None, extra))
    assert colour.psnr(kodak_crop, best) >= min_extra
    if name == "av1":  # lossless coding: only the colour conversion remains
        spec = codec.colour_spec
        reference = colour.yuv420_to_rgb(colour.rgb_to_yuv420(kodak_crop, spec), spec)
        assert np.array_equal(best, reference)


@pytest.mark.parametrize("name", CLASSES)
def test_bpp_strictly_increases_along_the_grid(name, kodak_crop):
    codec = make(name)
    assert len(codec.qualities) >= 6
    rates = [bpp(codec.encode(kodak_crop, None, q), kodak_crop) for q in codec.qualities]
    assert all(a < b for a, b in zip(rates, rates[1:], strict=False)), rates
    assert rates[0] < 0.5 and rates[-1] > 1.0, rates


@pytest.mark.parametrize("name", CLASSES)
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (17, 31)])
def test_odd_sizes_round_trip(name, shape):
    codec = make(name)
    image = np.random.default_rng(7).integers(0, 256, (*shape, 3), np.uint8)
    for quality in (codec.qualities[0], codec.qualities[-1]):
        recon = codec.decode(codec.encode(image, None, quality))
        assert recon.shape == image.shape and recon.dtype == np.uint8


@pytest.mark.parametrize("name", CLASSES)
@pytest.mark.parametrize("shape", [(3, 5), (17, 31)])
def test_odd_sizes_keep_the_pixels_in_place(name, shape, kodak_crop):
    """Padding to the codec's block size and cropping back keeps every pixel where it was: on
    the crop's busiest 17x31 window, at the near-lossless extra quality, 27-49 dB (jpeg2000 at
    3x5 the lowest); the reconstruction moved by one pixel gives 14-18 dB."""
    extra = EXPECTED[name][0]
    codec = make(name, extra_qualities=(extra,))
    image = np.ascontiguousarray(kodak_crop[32:32 + shape[0], 204:204 + shape[1]])
    recon = codec.decode(codec.encode(image, None, extra))
    assert colour.psnr(image, recon) >= 25.0


@pytest.mark.parametrize("name", CLASSES)
def test_version_names_encoder_ffmpeg_and_grid(name):
    codec = make(name)
    text = codec.version()
    assert codec.encoder in text and "; ffmpeg " in text
    assert codec.qualities[0] in text and codec.qualities[-1] in text
    if name in ("vvc", "hevc", "av1", "jpeg2000"):  # these libraries report their version
        library = codec.ffmpeg.library_version(codec.encoder)
        assert any(ch.isdigit() for ch in library), library


@pytest.mark.parametrize("name", CLASSES)
def test_last_command_is_one_threaded_argv(name):
    codec = make(name)
    image = np.random.default_rng(8).integers(0, 256, (20, 24, 3), np.uint8)
    codec.encode(image, None, codec.qualities[0])
    argv = codec.last_command
    assert isinstance(argv, list) and argv[0] == codec.ffmpeg.path
    assert codec.encoder in argv
    assert argv[argv.index("-threads") + 1] == "1"


def test_video_stream_carries_its_colour_spec():
    """An 8-bit BT.709 full-range AV1 stream decodes right with a default (10-bit) instance."""
    spec = colour.ColourSpec("bt709", "pc", 8)
    encoder = make("av1", colour_spec=spec, extra_qualities=("crf0",))
    image = np.random.default_rng(9).integers(0, 256, (18, 22, 3), np.uint8)
    data = encoder.encode(image, None, "crf0")
    recon = Av1Codec().decode(data)
    assert np.array_equal(recon, colour.yuv420_to_rgb(colour.rgb_to_yuv420(image, spec), spec))


def test_bad_quality_names():
    with pytest.raises(ValueError, match="qp47"):
        VvcCodec().check_quality("qp99")
    with pytest.raises(ValueError, match="outside"):
        VvcCodec(extra_qualities=("qp99",))
    with pytest.raises(ValueError, match="even"):
        Jpeg2000Codec(extra_qualities=("cr5",))
    with pytest.raises(ValueError):
        parse_prefixed("d", "d", 0, 1)


# --------------------------------------------------------------------------- stream format


@pytest.mark.parametrize("size", [(1, 1), (480, 640), (3000, 200_000)])
def test_picture_header_round_trip(size):
    spec = colour.ColourSpec("bt709", "pc", 8)
    head = pack_header(spec, *size)
    assert len(head) <= 7
    got_spec, height, width, offset = unpack_header(head + b"payload")
    assert (got_spec, height, width) == (spec, *size) and offset == len(head)


def test_picture_header_is_small_and_checked():
    assert len(pack_header(colour.ColourSpec(), 480, 640)) == 5
    for bad in (b"", b"\x00\x01\x01", b"\xa0\x80"):
        with pytest.raises(CodecError):
            unpack_header(bad)


def test_corrupt_stream_raises_codec_error():
    codec = make("hevc")
    with pytest.raises(CodecError):
        codec.decode(pack_header(codec.colour_spec, 16, 16) + b"\x00\x00\x01garbage")


def test_vvc_names_ffmpegs_output_buffer_when_a_picture_needs_more_than_8_bpp():
    """ffmpeg's libvvenc wrapper holds one picture's bitstream in width x height bytes:
    uniform noise fits at qp17 (about 7.9 bpp) and not at qp12; the error says why and what
    to do instead of only ffmpeg's "Error submitting video frame". It pins ffmpeg's current
    wrapper: should a later one hold more, qp12 codes and this test says so."""
    codec = make("vvc")
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert len(codec.encode(noise, None, "qp17")) * 8 / noise[..., 0].size < 8.0
    with pytest.raises(CodecError, match=r"qp12.*4096 bytes \(8 bits per pixel\).*QP above 12"):
        codec.encode(noise, None, "qp12")


def test_jpeg2000_helpers():
    assert resolutions_for(1, 1) == 1 and resolutions_for(3, 5) == 2
    assert resolutions_for(480, 640) == 6
    comment = b"\xff\x64\x00\x08\x00\x01abcd"
    siz = b"\xff\x51\x00\x04\x00\x00"
    stream = b"\xff\x4f" + siz + comment + b"\xff\x90rest"
    assert strip_comments(stream) == b"\xff\x4f" + siz + b"\xff\x90rest"


# --------------------------------------------------------------------------- failures


def fake_program(folder: Path, body: str) -> Path:
    """An executable shell script standing in for ffmpeg."""
    path = folder / "fake-ffmpeg"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


@pytest.mark.parametrize("name", CLASSES)
def test_missing_program(name):
    codec = CLASSES[name](ffmpeg="/nonexistent/ffmpeg")
    assert "/nonexistent/ffmpeg" in codec.availability()
    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(CodecUnavailable, match="/nonexistent/ffmpeg"):
        codec.encode(image, None, codec.qualities[0])


@pytest.mark.parametrize("name", CLASSES)
def test_crashing_program(name, tmp_path):
    body = "echo 'starting' >&2\necho 'boom: fake encoder failed' >&2\nexit 3"
    script = fake_program(tmp_path, body)
    codec = CLASSES[name](ffmpeg=script)
    with pytest.raises(CodecError) as info:
        codec.encode(np.zeros((8, 8, 3), np.uint8), None, codec.qualities[0])
    message = str(info.value)
    assert str(script) in message and "exit code 3" in message
    assert "boom: fake encoder failed" in message
    with pytest.raises(CodecError, match="exit code 3"):
        codec.decode(pack_header(colour.ColourSpec(), 8, 8) + b"\x00\x00\x01")


def test_a_version_probe_that_cannot_run_makes_the_codec_unavailable(tmp_path):
    """ffmpeg answers its listings but the encoder's version probe hangs: the codec is
    unavailable, saying why, instead of running under a version claiming the library
    reports none (rows stored under another key than the same encoder's)."""
    from bench.codecs._ffmpeg import default_ffmpeg_path

    real = default_ffmpeg_path()
    script = fake_program(tmp_path, f'case "$*" in *lavfi*) sleep 30;; esac\nexec {real} "$@"')
    codec = CLASSES["hevc"](ffmpeg=script, timeout=2)
    why = codec.availability()
    assert why and "libx265's version probe (a 64x64 test encode) failed" in why, why
    assert "timed out after 2 s" in why
    assert "not reported" not in codec.version()
    fine = CLASSES["hevc"](ffmpeg=real)
    assert fine.availability() is None and "libx265 " in fine.version()


@pytest.mark.parametrize("name", ["vvc", "jpeg2000"])
def test_hanging_program_times_out(name, tmp_path):
    script = fake_program(tmp_path, "echo 'waiting forever' >&2\nsleep 30")
    codec = CLASSES[name](ffmpeg=script, timeout=1)
    start = time.monotonic()
    with pytest.raises(CodecError) as info:
        codec.encode(np.zeros((8, 8, 3), np.uint8), None, codec.qualities[0])
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert str(script) in message and "timed out after 1 s" in message
    assert "waiting forever" in message


def test_stderr_tail_keeps_the_end():
    text = "\n".join(f"line {i}" for i in range(100))
    tail = stderr_tail(text.encode())
    assert "line 99" in tail and "line 0\n" not in tail
    assert stderr_tail(b"") == "(no stderr)"


def test_run_program_returns_stdout(tmp_path):
    script = fake_program(tmp_path, "printf hello")
    assert run_program([script], timeout=10) == b"hello"


# --------------------------------------------------------------------------- corrupt streams


def ffmpeg_children() -> list[int]:
    """This process's live children that are ffmpeg (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == os.getpid() and state not in "ZX" and b"ffmpeg" in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="uses /proc")
def test_truncated_jpegxl_fails_in_seconds_and_leaves_nothing_behind(kodak_crop):
    """libjxl loops on a truncated codestream, writing errors to stderr without end."""
    codec = make("jpegxl")  # default timeout: 300 s
    data = codec.encode(kodak_crop, None, "d1")
    start = time.monotonic()
    with pytest.raises(CodecError) as info:
        codec.decode(data[: len(data) // 2])
    assert time.monotonic() - start < 15
    message = str(info.value)
    assert message.startswith("jpegxl: cannot decode this stream")
    assert "Unexpected end of JXL codestream" in message
    assert len(message) < 2500
    assert ffmpeg_children() == []
    leftovers = list(Path(tempfile.gettempdir()).glob(f"bench-{os.getpid()}-jpegxl-*"))
    assert leftovers == []


def test_decode_timeout_follows_the_picture_size():
    assert decode_timeout(480, 640, 300) == pytest.approx(10 + 10 * 0.3072)
    assert decode_timeout(2160, 3840, 300) == pytest.approx(10 + 10 * 8.2944)
    assert decode_timeout(16384, 16384, 300) == 300  # never more than the codec's timeout
    assert decode_timeout(None, None, 300) == pytest.approx(170)  # unknown: 16 MP


@pytest.mark.parametrize("name", ["vvc", "jpeg2000"])
def test_a_hanging_decoder_gets_the_size_timeout_not_the_codec_timeout(
    name, tmp_path, monkeypatch
):
    monkeypatch.setattr(_ffmpeg, "DECODE_TIMEOUT_BASE_S", 1.0)
    script = fake_program(tmp_path, "echo 'decoding' >&2\nsleep 30")
    codec = CLASSES[name](ffmpeg=script, timeout=300)
    if name == "vvc":
        stream = pack_header(codec.colour_spec, 16, 16) + b"\x00\x00\x01"
    else:  # a J2K main header declaring a 16x16 image
        stream = b"\xff\x4f\xff\x51\x00\x29\x00\x00" + (16).to_bytes(4, "big") * 2 + bytes(8)
    start = time.monotonic()
    with pytest.raises(CodecError, match=r"timed out after 1(\.0+\d*)? s"):
        codec.decode(stream)
    assert time.monotonic() - start < 5


def jxl_header(height: int, width: int) -> bytes:
    """A JPEG XL signature and SizeHeader (30-bit fields, no ratio) for ``height`` x ``width``."""
    bits = [0]  # small = false
    for value in (height - 1, None, width - 1):
        if value is None:
            bits += [0, 0, 0]  # ratio 0: the width follows
            continue
        bits += [1, 1]  # selector 3: 30 bits
        bits += [(value >> i) & 1 for i in range(30)]
    bits += [0] * (-len(bits) % 8)
    return b"\xff\x0a" + bytes(
        sum(bit << i for i, bit in enumerate(bits[k : k + 8])) for k in range(0, len(bits), 8)
    )


def test_declared_sizes_beyond_the_limit_are_refused_before_decoding():
    """No ffmpeg runs (its path does not exist): the header alone is refused."""
    huge = 100_000
    streams = {
        "vvc": pack_header(colour.ColourSpec(bit_depth=10), huge, huge) + b"\x00\x00\x01",
        "jpeg2000": b"\xff\x4f\xff\x51\x00\x29\x00\x00" + huge.to_bytes(4, "big") * 2
        + bytes(8),
        "webp": b"RIFF\x00\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00" + bytes(4)
        + (huge - 1).to_bytes(3, "little") * 2,
        "jpegxl": jxl_header(huge, huge),
    }
    for name, stream in streams.items():
        codec = CLASSES[name](ffmpeg="/nonexistent/ffmpeg")
        with pytest.raises(CodecError) as info:
            codec.decode(stream)
        assert not isinstance(info.value, CodecUnavailable), name
        assert f"declares a {huge}x{huge} picture" in str(info.value), name


@pytest.mark.parametrize("name", ["jpegxl", "webp", "jpeg2000"])
def test_stream_headers_give_the_picture_size(name):
    """Real encodes; the shapes cover every aspect-ratio code of JPEG XL's SizeHeader."""
    codec = make(name)
    shapes = [(1, 1), (3, 5), (64, 64), (50, 60), (96, 128), (64, 96), (72, 128), (64, 80),
              (32, 64), (17, 300)]
    rng = np.random.default_rng(9)
    for shape in shapes:
        image = rng.integers(0, 256, (*shape, 3), np.uint8)
        data = codec.encode(image, None, codec.qualities[-1])
        assert codec.picture_size(data) == shape
    assert codec.picture_size(b"not a picture stream at all, just bytes") is None
    assert codec.picture_size(b"") is None
    assert jxl_header(1234, 567)[:2] == b"\xff\x0a"
    assert codestream_size(jxl_header(1234, 567)) == (1234, 567)
