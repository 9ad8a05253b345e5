"""VVC reference software (VTM) wrapper with the MPEG VCM image-anchor settings.

The MPEG Video Coding for Machines (VCM) image anchors code each image with VTM in the
all-intra configuration at QPs 22, 27, 32, 37, 42 and 47. Their public scripts (as
CompressAI-Vision documents them) do, per image:

1. ``ffmpeg -i IMG -vf "pad=ceil(iw/2)*2:ceil(ih/2)*2" PAD.png``: pad to even size with
   **black**, the picture at the top left;
2. ``ffmpeg -i PAD.png -f rawvideo -pix_fmt yuv420p -dst_range 1 IN.yuv``: RGB to **8-bit
   full-range** YCbCr 4:2:0 with ffmpeg's scaler (BT.601 matrix, its own chroma filter);
3. ``EncoderApp -c encoder_intra_vtm.cfg -i IN.yuv -b BIN -o TMP.yuv -fr 1 -f 1 -wdt W -hgt H
   -q QP --ConformanceWindowMode=1 --InternalBitDepth=10`` (``InputBitDepth`` left at its
   default, 8);
4. ``DecoderApp -b BIN -o REC.yuv`` (10-bit, the internal depth), then
   ``ffmpeg -f rawvideo -pix_fmt yuv420p10le -s WxH -src_range 1 -i REC.yuv -pix_fmt rgb24``
   and a crop back to the original size.

Presets (``preset=``):

* ``vcm`` (default) follows those steps: black padding, ffmpeg's conversion to 8-bit full
  range, the same EncoderApp options (``--ReconFile=`` instead of ``-o TMP.yuv``: no unused
  reconstruction is written; the bitstream is the same), 10-bit decoding and ffmpeg's
  full-range conversion back. Its bitstream equals, byte for byte, the one the steps above
  give with the same ffmpeg and VTM (``tests/test_vtm.py``). What does not match:

  - the shipped ffmpeg (9.0) ignores ``-dst_range``/``-src_range`` wherever they stand and
    codes limited range; ffmpeg 4.2 honours ``-dst_range 1`` after ``-i``. The wrapper
    passes ``-dst_range 1 -color_range pc``, which gives full range with both (and with
    4.2 exactly the scripts' bytes), so it gets what the scripts get from the ffmpeg 4
    they were written for;
  - ffmpeg 9's scaler rounds chroma differently from ffmpeg 4.2's: on Kodak's kodim23,
    about half of the Cb/Cr samples differ by one code (luma: 0.6 % of samples, by one).
    Pass ``ffmpeg=`` (or ``IMAGEIO_FFMPEG_EXE``) with an ffmpeg 4.2 binary to get the
    published anchors' YUV exactly; with the shipped ffmpeg the streams are those of the
    anchor procedure run with ffmpeg 9;
  - the scripts' step 4 passes ``-src_range 1`` before ``-i``, where ffmpeg 4.2 and 9 both
    ignore it and read the full-range picture as limited range (a contrast error of about
    1 code in 8 bits); the wrapper converts back with full range, as the anchors intend.

* ``limited10``: the wrapper's earlier behaviour: 10-bit limited-range YCbCr 4:2:0 from
  :mod:`bench.codecs.colour` (the conversion the ffmpeg-based ``vvc``/``hevc``/``av1``
  wrappers use), edge-replicated padding, ``InputBitDepth=InternalBitDepth=10``. Useful to
  compare VTM with ``vvc`` (vvenc) on identical input, or VTM versions with each other
  without ffmpeg in the loop.

The stream's picture header names the input colour format (8-bit full range for ``vcm``,
10-bit limited range for ``limited10``), so any ``vtm`` instance decodes either. bpp counts
the bitstream plus that 3-7 byte header against the original (unpadded) size.

Finding VTM (documented defaults, first match wins):

* binaries: the ``vtm_dir`` argument, else ``$BENCH_VTM_DIR``: the folder holding
  ``EncoderApp`` and ``DecoderApp`` (``EncoderAppStatic``/``DecoderAppStatic`` and ``.exe``
  names also work), e.g. ``VVCSoftware_VTM/bin``;
* configuration: the ``cfg`` argument, else ``$BENCH_VTM_CFG``, else
  ``cfg/encoder_intra_vtm.cfg`` in ``<vtm_dir>`` or the nearest of its parent folders (at
  most five levels up). That finds the source tree's ``cfg/`` both from ``bin/`` (where
  VTM's build copies the programs) and from cmake's output folder
  ``bin/umake/gcc-*/x86_64/release`` five levels below the source root.

``bench run --vtm-dir DIR`` and ``bench codecs --vtm-dir DIR`` set ``$BENCH_VTM_DIR`` for
that command (and its worker processes), so the codec keeps its plain label ``vtm``; its
version names the VTM version, the configuration's hash, the preset and (for ``vcm``) the
ffmpeg that converts colours, which is what sets the stream.

``TemporalSubsampleRatio 8`` in VTM's all-intra configuration is left as it is: with one
frame it changes nothing in the bitstream, but VTM's *logged* bitrate is 1/8 of the real one
(bench never reads it: bpp comes from the bitstream's length).

Without the binaries the command lines can still be built and inspected
(:meth:`VtmCodec.build_encoder_argv`, :meth:`VtmCodec.build_decoder_argv`);
:meth:`VtmCodec.availability` says what is missing.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import external
from bench.codecs import colour
from bench.codecs._ffmpeg import (
    DEFAULT_TIMEOUT_S,
    Ffmpeg,
    check_picture_size,
    decode_timeout,
    pack_header,
    parse_prefixed,
    run_program,
    unpack_header,
)
from bench.codecs.base import Codec, CodecError, CodecUnavailable, check_image

#: Executable names tried, in order, for each VTM program.
ENCODER_NAMES = ("EncoderApp", "EncoderAppStatic", "EncoderApp.exe", "EncoderAppStatic.exe")
DECODER_NAMES = ("DecoderApp", "DecoderAppStatic", "DecoderApp.exe", "DecoderAppStatic.exe")

#: Configuration file of VTM's all-intra configuration.
INTRA_CFG = "encoder_intra_vtm.cfg"

#: Options every preset passes after the configuration file: one frame, no reconstruction
#: file, VTM's automatic conformance window (pads to its minimum CU size, the decoder crops).
_COMMON_OPTIONS = (
    "--InputChromaFormat=420",
    "--ConformanceWindowMode=1",
    "--FrameRate=1",
    "--FramesToBeEncoded=1",
    "--ReconFile=",
)


@dataclass(frozen=True)
class Preset:
    """How one preset turns RGB into VTM's input and back (see the module doc)."""

    #: EncoderApp options on top of the configuration file.
    options: tuple[str, ...]
    #: YCbCr format of the file EncoderApp reads (also written into the picture header).
    input_spec: colour.ColourSpec
    #: ``ffmpeg`` (its scaler, as the anchor scripts) or ``bench`` (:mod:`bench.codecs.colour`).
    converter: str
    #: Padding to even size: ``black`` (ffmpeg's pad filter) or ``edge`` (replicate).
    padding: str


PRESETS: dict[str, Preset] = {
    "vcm": Preset(
        options=("--InputBitDepth=8", "--InternalBitDepth=10", *_COMMON_OPTIONS),
        input_spec=colour.ColourSpec("bt601", "pc", 8),
        converter="ffmpeg",
        padding="black",
    ),
    "limited10": Preset(
        options=(
            "--InputBitDepth=10", "--InternalBitDepth=10", "--OutputBitDepth=10",
            *_COMMON_OPTIONS,
        ),
        input_spec=colour.ColourSpec("bt601", "tv", 10),
        converter="bench",
        padding="edge",
    ),
}  # fmt: skip

#: ffmpeg output options of the anchor's RGB -> 8-bit full-range 4:2:0 conversion:
#: ``-dst_range 1`` as the scripts (honoured by ffmpeg 4), ``-color_range pc`` for ffmpeg 9.
FFMPEG_TO_YUV = ("-f", "rawvideo", "-pix_fmt", "yuv420p", "-dst_range", "1", "-color_range", "pc")


def preset_of_stream(spec: colour.ColourSpec) -> str:
    """The preset whose input format is ``spec`` (from a stream's picture header)."""
    for name, preset in PRESETS.items():
        if preset.input_spec == spec:
            return name
    raise CodecError(f"vtm stream header names {spec.describe()}, which no vtm preset makes")


#: How many parent folders of ``vtm_dir`` :func:`default_cfg` looks in.
CFG_SEARCH_LEVELS = 5


def find_program(folder: Path | None, names: Iterable[str]) -> Path | None:
    """The first of ``names`` that is an executable file in ``folder``, else None."""
    if folder is None:
        return None
    for name in names:
        path = folder / name
        if path.is_file() and os.access(path, os.X_OK):
            return path
    return None


def default_cfg(vtm_dir: Path | None) -> Path | None:
    """``cfg/encoder_intra_vtm.cfg`` in ``vtm_dir`` or its nearest parent holding one (up
    to :data:`CFG_SEARCH_LEVELS` levels; see the module doc), or None."""
    if vtm_dir is None:
        return None
    folder = Path(os.path.abspath(vtm_dir))
    for candidate in [folder, *folder.parents][: CFG_SEARCH_LEVELS + 1]:
        path = candidate / "cfg" / INTRA_CFG
        if path.is_file():
            return path
    return None


@functools.cache
def _program_version(path: str, timeout: float) -> str:
    """``23.x`` from the banner VTM prints on ``--help`` (which may exit non-zero)."""
    try:
        done = external.run([path, "--help"], timeout=min(timeout, 60.0), check=False)
    except external.ProgramError:
        return "unknown"
    text = (done.stdout + done.stderr).decode("utf-8", "replace")
    match = re.search(r"VTM (?:Encoder|Decoder) Version (\S+)", text)
    return match.group(1) if match else "unknown"


class VtmCodec(Codec):
    """VVC with the VTM reference encoder/decoder, VCM anchor procedure; names ``qp<QP>``.

    Parameters
    ----------
    vtm_dir:
        Folder with ``EncoderApp``/``DecoderApp``; default ``$BENCH_VTM_DIR``.
    cfg:
        Encoder configuration file; default ``$BENCH_VTM_CFG``, else found near ``vtm_dir``.
    preset:
        ``vcm`` (the MPEG VCM anchor scripts' procedure, default) or ``limited10`` (10-bit
        limited range from :mod:`bench.codecs.colour`); see the module doc.
    ffmpeg:
        ffmpeg executable of the ``vcm`` preset's colour conversions; default
        imageio-ffmpeg's (``IMAGEIO_FFMPEG_EXE`` overrides it).
    timeout:
        Seconds one VTM call may run (VTM all-intra takes tens of seconds per image).
    extra_qualities:
        Off-grid ``qp<N>`` names this instance also accepts (never in :attr:`qualities`).
    """

    name = "vtm"
    qualities = ("qp47", "qp42", "qp37", "qp32", "qp27", "qp22")

    def __init__(
        self,
        vtm_dir: str | Path | None = None,
        cfg: str | Path | None = None,
        preset: str = "vcm",
        timeout: float = DEFAULT_TIMEOUT_S * 4,
        extra_qualities: Iterable[str] = (),
        ffmpeg: str | Path | None = None,
    ):
        if preset not in PRESETS:
            raise ValueError(f"unknown VTM preset {preset!r}; choose from {sorted(PRESETS)}")
        folder = vtm_dir if vtm_dir is not None else os.environ.get("BENCH_VTM_DIR")
        self.vtm_dir = Path(folder) if folder else None
        cfg_path = cfg if cfg is not None else os.environ.get("BENCH_VTM_CFG")
        self.cfg = Path(cfg_path) if cfg_path else default_cfg(self.vtm_dir)
        self.preset = preset
        self.timeout = float(timeout)
        self.colour_spec = PRESETS[preset].input_spec
        self.ffmpeg = Ffmpeg(ffmpeg, timeout=DEFAULT_TIMEOUT_S)
        self.last_command: list[str] | None = None
        self.extra_qualities = tuple(extra_qualities)
        for quality in self.extra_qualities:
            self.parse_quality(quality)

    # -- qualities and configuration

    def parse_quality(self, quality: str) -> int:
        """QP of a ``qp<0..63>`` name."""
        return int(parse_prefixed(quality, "qp", 0, 63))

    def check_quality(self, quality: str) -> str:
        """Accept grid names and this instance's ``extra_qualities``."""
        if quality in self.extra_qualities:
            return quality
        return super().check_quality(quality)

    @property
    def encoder_path(self) -> Path | None:
        """The VTM encoder executable, or None when not found."""
        return find_program(self.vtm_dir, ENCODER_NAMES)

    @property
    def decoder_path(self) -> Path | None:
        """The VTM decoder executable, or None when not found."""
        return find_program(self.vtm_dir, DECODER_NAMES)

    def availability(self) -> str | None:
        """None when encoder, decoder, configuration file (and ffmpeg for ``vcm``) are found."""
        if PRESETS[self.preset].converter == "ffmpeg":
            missing = self.ffmpeg.missing()
            if missing is not None:
                return f"vtm preset {self.preset} converts colours with ffmpeg: {missing}"
        if self.vtm_dir is None:
            return "VTM not configured: pass vtm_dir or set BENCH_VTM_DIR (folder of EncoderApp)"
        if self.encoder_path is None:
            return f"VTM EncoderApp not found in {self.vtm_dir}"
        if self.decoder_path is None:
            return f"VTM DecoderApp not found in {self.vtm_dir}"
        if self.cfg is None or not self.cfg.is_file():
            where = self.cfg or f"near {self.vtm_dir}"
            return f"VTM configuration {INTRA_CFG} not found ({where}); set BENCH_VTM_CFG"
        return None

    def _cfg_text(self) -> str:
        """Name and short SHA-256 of the configuration file (its content sets the stream)."""
        if self.cfg is None or not self.cfg.is_file():
            return "cfg=missing"
        digest = hashlib.sha256(self.cfg.read_bytes()).hexdigest()[:12]
        return f"cfg={self.cfg.name} sha256:{digest}"

    def version(self) -> str:
        """VTM version, configuration file (name + hash), preset options, grid, colour
        conversion (with the ffmpeg version for ``vcm``)."""
        path = self.encoder_path
        vtm = _program_version(str(path), self.timeout) if path else "unavailable"
        grid = ",".join(f"{q}={self.parse_quality(q)}" for q in self.qualities)
        preset = PRESETS[self.preset]
        conversion = f"{self.colour_spec.describe()} pad {preset.padding} via "
        if preset.converter == "ffmpeg":
            conversion += f"ffmpeg {self.ffmpeg.version()} {' '.join(FFMPEG_TO_YUV[2:])}"
        else:
            conversion += "bench.codecs.colour"
        return (
            f"VTM {vtm}; {self._cfg_text()}; preset={self.preset} {' '.join(preset.options)}; "
            f"{conversion}; grid {grid}"
        )

    # -- command lines

    def build_encoder_argv(
        self, yuv_path: str | Path, bitstream_path: str | Path, width: int, height: int, qp: int
    ) -> list[str]:
        """EncoderApp argv coding one 4:2:0 frame ``width`` x ``height`` at ``qp``.

        ``width`` and ``height`` are those of the (even-padded) YUV file. Works without the
        binaries (the program name is then a placeholder), so it can be tested and shown.
        """
        if width % 2 or height % 2:
            raise ValueError(f"4:2:0 input must have even size, got {width}x{height}")
        program = self.encoder_path or (self.vtm_dir or Path("<BENCH_VTM_DIR>")) / "EncoderApp"
        cfg = self.cfg or Path(f"<BENCH_VTM_CFG>/{INTRA_CFG}")
        return [
            str(program), "-c", str(cfg),
            f"--InputFile={yuv_path}", f"--BitstreamFile={bitstream_path}",
            f"--SourceWidth={width}", f"--SourceHeight={height}",
            *PRESETS[self.preset].options, f"--QP={qp}",
        ]  # fmt: skip

    def build_decoder_argv(self, bitstream_path: str | Path, recon_path: str | Path) -> list[str]:
        """DecoderApp argv writing the 10-bit reconstruction of ``bitstream_path``."""
        program = self.decoder_path or (self.vtm_dir or Path("<BENCH_VTM_DIR>")) / "DecoderApp"
        return [str(program), "-b", str(bitstream_path), "-o", str(recon_path), "-d", "10"]

    # -- coding

    def decode_timeout(self, height: int, width: int) -> float:
        """Seconds one DecoderApp call may take: proportional to the picture size
        (:func:`bench.codecs._ffmpeg.decode_timeout`), at most this codec's ``timeout``."""
        return decode_timeout(height, width, self.timeout)

    def _require(self) -> None:
        """Raise CodecUnavailable with the reason when VTM cannot run."""
        reason = self.availability()
        if reason is not None:
            raise CodecUnavailable(reason)

    def write_input(self, image: np.ndarray, folder: Path) -> tuple[Path, int, int]:
        """The YUV file EncoderApp reads for ``image`` under this preset, and its width and
        height (the image padded to even size)."""
        preset = PRESETS[self.preset]
        path = folder / "in.yuv"
        height, width = image.shape[:2]
        padded = colour.pad_to(image, height + height % 2, width + width % 2, preset.padding)
        if preset.converter == "bench":
            colour.write_yuv(path, colour.rgb_to_yuv420(padded, self.colour_spec))
            return path, padded.shape[1], padded.shape[0]
        rgb_path = folder / "in.rgb"
        rgb_path.write_bytes(np.ascontiguousarray(padded).tobytes())
        size = f"{padded.shape[1]}x{padded.shape[0]}"
        argv = self.ffmpeg.command(
            ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", size, "-i", str(rgb_path),
             *FFMPEG_TO_YUV, str(path)]
        )  # fmt: skip
        self.ffmpeg.run(argv, cwd=folder)
        expected = colour.frame_bytes(padded.shape[0], padded.shape[1], 8)
        if not path.is_file() or path.stat().st_size != expected:
            raise CodecError(f"ffmpeg did not write the {size} 8-bit 4:2:0 picture VTM needs")
        return path, padded.shape[1], padded.shape[0]

    def read_output(
        self, path: Path, spec: colour.ColourSpec, height: int, width: int, folder: Path
    ) -> np.ndarray:
        """RGB of DecoderApp's 10-bit output ``path`` (padded size), cropped to the original
        ``height`` x ``width``, converted back as the stream's preset says."""
        padded_h, padded_w = height + height % 2, width + width % 2
        if PRESETS[preset_of_stream(spec)].converter == "bench":
            try:
                yuv = colour.yuv_from_bytes(path.read_bytes(), padded_h, padded_w, 10)
            except ValueError as exc:
                raise CodecError(f"VTM decoded an unexpected picture: {exc}") from exc
            return colour.crop(colour.yuv420_to_rgb(yuv, spec), height, width)
        if path.stat().st_size != colour.frame_bytes(padded_h, padded_w, 10):
            raise CodecError(
                f"VTM decoded an unexpected picture: {path.stat().st_size} bytes, not one "
                f"10-bit {padded_w}x{padded_h} 4:2:0 frame"
            )
        rgb_path = folder / "rec.rgb"
        argv = self.ffmpeg.command(
            ["-f", "rawvideo", "-pix_fmt", "yuv420p10le", "-s", f"{padded_w}x{padded_h}",
             "-color_range", "pc", "-i", str(path), "-frames:v", "1",
             "-f", "rawvideo", "-pix_fmt", "rgb24", str(rgb_path)]
        )  # fmt: skip
        self.ffmpeg.run(argv, cwd=folder)
        raw = rgb_path.read_bytes() if rgb_path.is_file() else b""
        if len(raw) != padded_h * padded_w * 3:
            raise CodecError(f"ffmpeg did not convert the {padded_w}x{padded_h} reconstruction")
        rgb = np.frombuffer(raw, np.uint8).reshape(padded_h, padded_w, 3)
        return np.ascontiguousarray(rgb[:height, :width])

    def encode(self, image: np.ndarray, roi: np.ndarray | None, quality: str) -> bytes:
        """Header + VTM bitstream of ``image`` at ``quality`` (``roi`` is ignored)."""
        check_image(image)
        qp = self.parse_quality(self.check_quality(quality))
        self._require()
        height, width = image.shape[:2]
        with external.work_dir(self.name) as tmp:
            yuv_path, coded_w, coded_h = self.write_input(image, tmp)
            out_path = tmp / "out.266"
            argv = self.build_encoder_argv(yuv_path, out_path, coded_w, coded_h, qp)
            self.last_command = argv
            run_program(argv, timeout=self.timeout, cwd=tmp)
            if not out_path.is_file() or out_path.stat().st_size == 0:
                raise CodecError(f"{argv[0]} exited 0 but wrote no bitstream")
            payload = out_path.read_bytes()
        return pack_header(self.colour_spec, height, width) + payload

    def decode(self, data: bytes) -> np.ndarray:
        """RGB image of a stream made by :meth:`encode`, cropped to the original size."""
        spec, height, width, offset = unpack_header(data)
        check_picture_size(height, width, "vtm picture header")
        preset_of_stream(spec)
        self._require()
        with external.work_dir(self.name) as tmp:
            stream_path = tmp / "in.266"
            stream_path.write_bytes(data[offset:])
            recon_path = tmp / "rec.yuv"
            argv = self.build_decoder_argv(stream_path, recon_path)
            run_program(argv, timeout=self.decode_timeout(height, width), cwd=tmp)
            if not recon_path.is_file():
                raise CodecError(f"{argv[0]} exited 0 but wrote no reconstruction")
            return self.read_output(recon_path, spec, height, width, tmp)
