"""VVC reference software (VTM) wrapper with the MPEG VCM image-anchor settings.

The MPEG Video Coding for Machines (VCM) common test conditions define the image anchors as
VTM in the all-intra configuration at QPs 22, 27, 32, 37, 42 and 47, on YUV 4:2:0 10-bit
(``InputBitDepth=10``, ``InternalBitDepth=10``, ``OutputBitDepth=10``), with
``ConformanceWindowMode=1`` so that VTM pads the picture to its minimum CU size and the
decoder crops it back; images are padded to even size first, and bpp counts the bitstream
against the original (unpadded) size. The ``vcm`` preset reproduces exactly these encoder
settings; the RGB <-> YUV conversion is :mod:`bench.codecs.colour` (BT.601 limited range,
10 bit), the same as for the ffmpeg-based codecs. MPEG's anchor scripts convert with ffmpeg
instead: same matrix and range, but ffmpeg's own chroma filters, so reconstructions (not the
encoder settings) may differ from the published anchors by a fraction of a dB.

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
version names the VTM version and the configuration's hash, which is what sets the stream.

Two things in VTM's all-intra configuration are overridden or noted: ``ReconFile`` is
cleared (``--ReconFile=``, VTM's own default), so an encode writes no reconstruction nobody
reads (it does not change the bitstream); ``TemporalSubsampleRatio 8`` is left as it is: with
one frame it changes nothing in the bitstream, but VTM's *logged* bitrate is 1/8 of the real
one (bench never reads it: bpp comes from the bitstream's length).

The stream is VTM's raw Annex-B ``.266`` bitstream behind the same 3-7 byte picture header the
ffmpeg codecs use (original width and height, colour conversion). Without the binaries the
command lines can still be built and inspected (:meth:`VtmCodec.build_encoder_argv`,
:meth:`VtmCodec.build_decoder_argv`); :meth:`VtmCodec.availability` says what is missing.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from bench import external
from bench.codecs import colour
from bench.codecs._ffmpeg import (
    DEFAULT_TIMEOUT_S,
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

#: Encoder options of each preset, on top of the configuration file. ``vcm``: the MPEG VCM
#: image anchors (10-bit 4:2:0 in, internal and out; automatic conformance window).
PRESETS: dict[str, tuple[str, ...]] = {
    "vcm": (
        "--InputBitDepth=10",
        "--InternalBitDepth=10",
        "--OutputBitDepth=10",
        "--InputChromaFormat=420",
        "--ConformanceWindowMode=1",
        "--FrameRate=1",
        "--FramesToBeEncoded=1",
        "--ReconFile=",
    ),
}

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
    """VVC with the VTM reference encoder/decoder, VCM anchor settings; names ``qp<QP>``.

    Parameters
    ----------
    vtm_dir:
        Folder with ``EncoderApp``/``DecoderApp``; default ``$BENCH_VTM_DIR``.
    cfg:
        Encoder configuration file; default ``$BENCH_VTM_CFG``, else found near ``vtm_dir``.
    preset:
        Encoder options on top of ``cfg``; only ``vcm`` (the MPEG VCM anchors) exists.
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
    ):
        if preset not in PRESETS:
            raise ValueError(f"unknown VTM preset {preset!r}; choose from {sorted(PRESETS)}")
        folder = vtm_dir if vtm_dir is not None else os.environ.get("BENCH_VTM_DIR")
        self.vtm_dir = Path(folder) if folder else None
        cfg_path = cfg if cfg is not None else os.environ.get("BENCH_VTM_CFG")
        self.cfg = Path(cfg_path) if cfg_path else default_cfg(self.vtm_dir)
        self.preset = preset
        self.timeout = float(timeout)
        self.colour_spec = colour.ColourSpec(bit_depth=10)
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
        """None when encoder, decoder and configuration file are all found."""
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
        """VTM version, configuration file (name + hash), preset options, grid, colour."""
        path = self.encoder_path
        vtm = _program_version(str(path), self.timeout) if path else "unavailable"
        grid = ",".join(f"{q}={self.parse_quality(q)}" for q in self.qualities)
        options = " ".join(PRESETS[self.preset])
        return (
            f"VTM {vtm}; {self._cfg_text()}; preset={self.preset} {options}; "
            f"{self.colour_spec.describe()}; grid {grid}"
        )

    # -- command lines

    def build_encoder_argv(
        self, yuv_path: str | Path, bitstream_path: str | Path, width: int, height: int, qp: int
    ) -> list[str]:
        """EncoderApp argv coding one 10-bit 4:2:0 frame ``width`` x ``height`` at ``qp``.

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
            *PRESETS[self.preset], f"--QP={qp}",
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

    def encode(self, image: np.ndarray, roi: np.ndarray | None, quality: str) -> bytes:
        """Header + VTM bitstream of ``image`` at ``quality`` (``roi`` is ignored)."""
        check_image(image)
        qp = self.parse_quality(self.check_quality(quality))
        self._require()
        height, width = image.shape[:2]
        yuv = colour.rgb_to_yuv420(colour.pad_even(image), self.colour_spec)
        with external.work_dir(self.name) as tmp:
            yuv_path = colour.write_yuv(tmp / "in.yuv", yuv)
            out_path = tmp / "out.266"
            argv = self.build_encoder_argv(yuv_path, out_path, yuv.width, yuv.height, qp)
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
        self._require()
        with external.work_dir(self.name) as tmp:
            stream_path = tmp / "in.266"
            stream_path.write_bytes(data[offset:])
            recon_path = tmp / "rec.yuv"
            argv = self.build_decoder_argv(stream_path, recon_path)
            run_program(argv, timeout=self.decode_timeout(height, width), cwd=tmp)
            if not recon_path.is_file():
                raise CodecError(f"{argv[0]} exited 0 but wrote no reconstruction")
            raw = recon_path.read_bytes()
        try:
            yuv = colour.yuv_from_bytes(raw, height + height % 2, width + width % 2, 10)
        except ValueError as exc:
            raise CodecError(f"VTM decoded an unexpected picture: {exc}") from exc
        return colour.crop(colour.yuv420_to_rgb(yuv, spec), height, width)
