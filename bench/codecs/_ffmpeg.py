"""Shared machinery of the codecs that run an external program, mostly ffmpeg.

* :func:`run_program` runs one argv list through :func:`bench.external.run` (no shell,
  bounded output, a timeout that kills the program's whole process group, and the program
  killed with its parent) and turns every failure into a
  :class:`~bench.codecs.base.CodecError` that names the program, its exit code or what
  stopped it, and the tail of its stderr (or :class:`~bench.codecs.base.CodecUnavailable`
  when the program does not exist).
* :class:`Ffmpeg` is one ffmpeg executable (by default the one imageio-ffmpeg ships): it runs
  ffmpeg, lists its encoders and decoders, and reports its own and its libraries' versions.
  Those answers are cached per executable, so asking is cheap.
* :class:`FfmpegCodec` is the base of the codecs in this package that wrap an ffmpeg encoder;
  :class:`YuvFfmpegCodec` adds the pipeline of the video codecs (VVC, HEVC, AV1): pad to even
  size, convert with :mod:`bench.codecs.colour`, encode raw 4:2:0, prepend a tiny picture
  header; and the reverse on decode.

Every call works in its own temporary directory (:func:`bench.external.work_dir`), so codecs
are safe to use from several processes at once. Encoders run with one thread: the harness
parallelises across images. Encoders get the codec's ``timeout``; a decoder gets a timeout
proportional to the picture's size (:func:`decode_timeout`), read from the picture header or
the format's own header before decoding, and a stream that declares an absurd size is
refused before ffmpeg allocates it.
"""

from __future__ import annotations

import functools
import os
import re
from abc import abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from bench import external
from bench.codecs import colour
from bench.codecs.base import Codec, CodecError, CodecUnavailable, check_image
from bench.varint import decode_varint, encode_varint

#: Seconds one external program may run before it is killed (encoders; decoders get
#: :func:`decode_timeout`).
DEFAULT_TIMEOUT_S = 300.0

#: A decode may take this long plus :data:`DECODE_TIMEOUT_S_PER_MPIXEL` per million pixels of
#: the picture (but never more than the codec's ``timeout``). Real decodes of a 0.4 MP Kodak
#: image take 0.07-0.15 s here, process start included, so this leaves a margin of about
#: 100x for loaded machines while a stuck decoder is stopped in seconds, not minutes.
DECODE_TIMEOUT_BASE_S = 10.0
DECODE_TIMEOUT_S_PER_MPIXEL = 10.0

#: Largest picture (width x height) a stream may declare; more is refused before decoding.
#: 2**28 pixels is 16384 x 16384, far beyond any benchmark image.
MAX_PICTURE_PIXELS = 1 << 28

#: How much of a failing program's stderr goes into the error message.
STDERR_TAIL_LINES = 12
STDERR_TAIL_CHARS = 1500


# --------------------------------------------------------------------------- running programs


def stderr_tail(stderr: bytes | str | None) -> str:
    """The last lines of a program's stderr, decoded and shortened for an error message."""
    return external.stderr_tail(stderr, STDERR_TAIL_LINES, STDERR_TAIL_CHARS)


def run_program(
    argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT_S, cwd: str | Path | None = None
) -> bytes:
    """Run ``argv`` with :func:`bench.external.run` and return its stdout.

    Every failure becomes a :class:`~bench.codecs.base.CodecError` naming the program, its
    exit code or what stopped it, and the tail of its stderr;
    :class:`~bench.codecs.base.CodecUnavailable` when the program does not exist. The
    program never outlives the call, nor the process (see :mod:`bench.external`).
    """
    try:
        return external.run(argv, timeout=timeout, cwd=cwd).stdout
    except external.ProgramNotFound as exc:
        raise CodecUnavailable(str(exc)) from None
    except external.ProgramError as exc:
        raise CodecError(str(exc)) from None


def decode_timeout(height: int | None, width: int | None, limit: float) -> float:
    """Seconds a decoder gets for a ``height`` x ``width`` picture, at most ``limit``.

    Proportional to the picture's size (:data:`DECODE_TIMEOUT_BASE_S` plus
    :data:`DECODE_TIMEOUT_S_PER_MPIXEL` per megapixel); when the size is unknown, that of a
    16-megapixel picture.
    """
    pixels = height * width if height and width else 16_000_000
    return min(limit, DECODE_TIMEOUT_BASE_S + DECODE_TIMEOUT_S_PER_MPIXEL * pixels / 1e6)


def check_picture_size(height: int, width: int, what: str) -> None:
    """Raise CodecError when a stream declares more than :data:`MAX_PICTURE_PIXELS`."""
    if height * width > MAX_PICTURE_PIXELS:
        raise CodecError(
            f"{what} declares a {width}x{height} picture, more than the "
            f"{MAX_PICTURE_PIXELS:,} pixels bench decodes; the stream is corrupt or not "
            "made by this codec"
        )


# --------------------------------------------------------------------------- one ffmpeg


def default_ffmpeg_path() -> str:
    """Path of the ffmpeg binary imageio-ffmpeg provides (or ``IMAGEIO_FFMPEG_EXE``)."""
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise CodecUnavailable("imageio-ffmpeg is not installed") from exc
    try:
        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except RuntimeError as exc:
        raise CodecUnavailable(f"imageio-ffmpeg found no ffmpeg binary: {exc}") from exc


@functools.cache
def _listing(path: str, kind: str, timeout: float) -> frozenset[str]:
    """Names in ``ffmpeg -encoders``/``-decoders``/``-muxers``/``-demuxers`` (cached)."""
    text = run_program([path, "-hide_banner", f"-{kind}"], timeout=timeout).decode(
        "utf-8", "replace"
    )
    names = set()
    for line in text.splitlines():
        match = re.match(r"^\s*[A-Z.]{2,6}\s+([\w,-]+)\s", line)
        if match and match.group(1) != "=":
            names.update(match.group(1).split(","))
    return frozenset(names)


@functools.cache
def _ffmpeg_version(path: str, timeout: float) -> str:
    """``n9.0.2-...`` from the first line of ``ffmpeg -version`` (cached)."""
    first = run_program([path, "-hide_banner", "-version"], timeout=timeout).decode(
        "utf-8", "replace"
    )
    match = re.match(r"ffmpeg version (\S+)", first)
    return match.group(1) if match else first.splitlines()[0] if first else "unknown"


#: Patterns that find a library's own version in ffmpeg's verbose log of a tiny encode.
_LIBRARY_VERSION_PATTERNS = (
    r"libvvenc version: (\S+)",
    r"HEVC encoder version (\S+)",
    r"\[libaom-av1 @ [^\]]+\] (v\d\S*)",
    r"SVT-AV1 Encoder Lib (\S+)",
    r"Created by OpenJPEG version ([0-9][0-9A-Za-z.+-]*)",  # COM marker in the codestream
)


@functools.cache
def _library_version(path: str, encoder: str, timeout: float) -> str:
    """The encoder library's version as it logs (or marks) it in one 64x64 encode (cached);
    "unknown" when its log names none (its exit status does not matter: libaom logs its
    version, then ffmpeg fails to write AV1 to an image pipe).

    An encode that cannot run (not started, timed out, flooding its output) raises
    :class:`CodecUnavailable` and is not cached: read as "not reported", it would put
    another version string on the codec's rows.
    """
    argv = [
        path, "-hide_banner", "-nostdin", "-loglevel", "verbose",
        "-f", "lavfi", "-i", "color=c=gray:s=64x64:d=0.04",
        "-frames:v", "1", "-c:v", encoder, "-f", "image2pipe", "-",
    ]  # fmt: skip
    try:
        done = external.run(argv, timeout=min(timeout, 60.0), check=False)
    except external.ProgramError as exc:
        raise CodecUnavailable(f"{encoder}'s version probe (a 64x64 test encode) failed: "
                               f"{exc}") from exc
    log = done.stderr.decode("utf-8", "replace") + done.stdout.decode("latin-1")
    for pattern in _LIBRARY_VERSION_PATTERNS:
        match = re.search(pattern, log)
        if match:
            return match.group(1)
    return "unknown"


class Ffmpeg:
    """One ffmpeg executable: run it, ask what it supports, report versions.

    ``path`` defaults to imageio-ffmpeg's binary. A missing path is not an error until
    something runs; :meth:`missing` says why the executable cannot be used.
    """

    def __init__(self, path: str | Path | None = None, timeout: float = DEFAULT_TIMEOUT_S):
        self._path = str(path) if path is not None else None
        self.timeout = float(timeout)

    @property
    def path(self) -> str:
        """The executable's path; raises CodecUnavailable when imageio-ffmpeg has none."""
        if self._path is None:
            self._path = default_ffmpeg_path()
        return self._path

    def command(self, args: Sequence[str], threads: int | None = 1) -> list[str]:
        """Full argv of one quiet, non-interactive ffmpeg call with ``args``."""
        head = [self.path, "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
        if threads is not None:
            head += ["-filter_threads", str(threads)]
        return head + list(args)

    def run(
        self, argv: Sequence[str], cwd: str | Path | None = None, timeout: float | None = None
    ) -> bytes:
        """Run a full argv (as from :meth:`command`) under ``timeout`` (default: this
        ffmpeg's)."""
        return run_program(argv, timeout=self.timeout if timeout is None else timeout, cwd=cwd)

    def missing(self, encoders: Iterable[str] = (), decoders: Iterable[str] = ()) -> str | None:
        """None when the executable runs and has all the named coders, else the reason."""
        try:
            path = self.path
        except CodecUnavailable as exc:
            return str(exc)
        if not os.path.isfile(path) or not os.access(path, os.X_OK):
            return f"ffmpeg not found or not executable: {path}"
        try:
            have_enc = _listing(path, "encoders", self.timeout)
            have_dec = _listing(path, "decoders", self.timeout)
        except CodecError as exc:
            return f"ffmpeg at {path} does not run: {exc}"
        for name in encoders:
            if name not in have_enc:
                return f"ffmpeg lacks encoder {name} ({path})"
        for name in decoders:
            if name not in have_dec:
                return f"ffmpeg lacks decoder {name} ({path})"
        return None

    def library_problem(self, encoder: str) -> str | None:
        """None when ``encoder``'s version can be read (:meth:`library_version`), else why."""
        try:
            _library_version(self.path, encoder, self.timeout)
        except CodecUnavailable as exc:
            return str(exc)
        return None

    def version(self) -> str:
        """ffmpeg's own version (e.g. ``n9.0.2-17-g2a571b6068-20260930``)."""
        try:
            return _ffmpeg_version(self.path, self.timeout)
        except CodecError:
            return "unavailable"

    def library_version(self, encoder: str) -> str:
        """Version the encoder library reports of itself, or a note that it reports none.

        libvvenc, libx265, libaom and SVT-AV1 log theirs; libopenjpeg, libwebp and libjxl do
        not, and for those ffmpeg's build string (in :meth:`version`) pins the library.
        OpenJPEG's version is read from the comment marker it writes into the codestream.
        """
        try:
            found = _library_version(self.path, encoder, self.timeout)
        except CodecUnavailable:
            return "unavailable"
        return found if found != "unknown" else "(version not reported; pinned by ffmpeg build)"


# --------------------------------------------------------------------------- codec bases


class FfmpegCodec(Codec):
    """Base of a codec that encodes and decodes with one ffmpeg encoder and decoder.

    Parameters
    ----------
    ffmpeg:
        Path of the ffmpeg executable; default: imageio-ffmpeg's.
    timeout:
        Seconds one ffmpeg call may take before it is killed and a CodecError raised.
    threads:
        Threads per encode and decode (default 1: the harness parallelises across images).
    extra_qualities:
        Off-grid quality names this instance also accepts (e.g. ``("qp0",)`` for a
        near-lossless check); they never enter :attr:`qualities`, so the harness ignores them.
    """

    #: ffmpeg's names of the encoder and decoder this codec needs.
    encoder: ClassVar[str] = ""
    decoder: ClassVar[str] = ""
    #: Quality names are ``<quality_prefix><value>``, the value being the encoder parameter
    #: (QP, CRF, quality factor, ratio, distance) in ``quality_range``, an integer unless
    #: ``integer_quality`` is False.
    quality_prefix: ClassVar[str] = ""
    quality_range: ClassVar[tuple[float, float]] = (0, 0)
    integer_quality: ClassVar[bool] = True
    #: The encoder's named speed presets, fastest first (none: it takes no ``preset``).
    presets: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        ffmpeg: str | Path | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        threads: int = 1,
        extra_qualities: Iterable[str] = (),
    ):
        self.ffmpeg = Ffmpeg(ffmpeg, timeout)
        self.threads = int(threads)
        self.last_command: list[str] | None = None
        self.extra_qualities = tuple(extra_qualities)
        for quality in self.extra_qualities:
            self.parse_quality(quality)

    # -- qualities

    def parse_quality(self, quality: str) -> float:
        """The encoder parameter a quality name stands for; ValueError if it names none."""
        value = parse_prefixed(quality, self.quality_prefix, *self.quality_range)
        return int(value) if self.integer_quality else value

    def check_preset(self, preset: str) -> str:
        """``preset`` if the encoder has it, else ValueError naming the ones it has."""
        if preset not in self.presets:
            raise ValueError(f"unknown {self.encoder} preset {preset!r}; choose from "
                             f"{', '.join(self.presets)}")
        return preset

    def check_quality(self, quality: str) -> str:
        """Accept grid names and this instance's ``extra_qualities``."""
        if quality in self.extra_qualities:
            return quality
        return super().check_quality(quality)

    def grid_text(self) -> str:
        """``name=parameter`` pairs of the grid, for :meth:`version`."""
        return ",".join(f"{q}={self.parse_quality(q):g}" for q in self.qualities)

    # -- availability and versions

    def availability(self) -> str | None:
        """None when ffmpeg runs, has this codec's encoder and decoder, and the encoder's
        version can be read (rows are stored under it)."""
        return (self.ffmpeg.missing([self.encoder], [self.decoder])
                or self.ffmpeg.library_problem(self.encoder))

    @abstractmethod
    def config_text(self) -> str:
        """Encoder settings that change the bitstream, for :meth:`version`."""

    def version(self) -> str:
        """Encoder library version, ffmpeg version, settings and grid in one line."""
        library = self.ffmpeg.library_version(self.encoder)
        return (
            f"{self.encoder} {library}; ffmpeg {self.ffmpeg.version()}; "
            f"{self.config_text()}; grid {self.grid_text()}"
        )

    # -- running

    def _run(
        self, argv: list[str], cwd: Path, remember: bool, timeout: float | None = None
    ) -> None:
        """Run one ffmpeg argv in ``cwd``; remember it as :attr:`last_command` if encoding.

        ``timeout`` defaults to the codec's; decoders pass :meth:`decode_timeout`.
        """
        if remember:
            self.last_command = list(argv)
        self.ffmpeg.run(argv, cwd=cwd, timeout=timeout)

    def decode_timeout(self, height: int | None, width: int | None) -> float:
        """Seconds one decode of a ``height`` x ``width`` picture may take (:func:`decode_timeout`,
        at most the codec's ``timeout``; size unknown: that of a 16-megapixel picture)."""
        return decode_timeout(height, width, self.ffmpeg.timeout)

    def _decode_failed(self, exc: CodecError) -> CodecError:
        """The error of a failed decode, saying which codec could not decode the stream."""
        if isinstance(exc, CodecUnavailable):  # a missing ffmpeg says so itself
            return exc
        return CodecError(f"{self.name}: cannot decode this stream (corrupt or truncated?): {exc}")

    @staticmethod
    def _read_output(path: Path, what: str) -> bytes:
        """Bytes of a file ffmpeg should have written; CodecError if it is missing or empty."""
        if not path.is_file() or path.stat().st_size == 0:
            raise CodecError(f"ffmpeg exited 0 but wrote no {what} ({path.name})")
        return path.read_bytes()


#: First byte of the picture header: high nibble = header format version, low nibble = spec.
_HEADER_VERSION = 0xA
_MATRIX_CODES = {"bt601": 0, "bt709": 1}
_RANGE_CODES = {"tv": 0, "pc": 1}
_DEPTH_CODES = {8: 0, 10: 1}


def _varint(value: int) -> bytes:
    """Unsigned LEB128 bytes of ``value``."""
    return encode_varint(value)


def _read_varint(data: bytes, offset: int) -> tuple[int, int]:
    """Value and next offset of the LEB128 number at ``data[offset:]``."""
    try:
        return decode_varint(data, offset, max_bits=35)
    except ValueError as exc:
        raise CodecError("truncated or corrupt picture header") from exc


def pack_header(spec: colour.ColourSpec, height: int, width: int) -> bytes:
    """Picture header (3-7 bytes): version+colour spec byte, then width and height varints.

    It carries what the decoder cannot get from the codec's own bitstream: the original
    (unpadded) size and the colour conversion to invert. Its bytes count in bpp.
    """
    spec_code = _MATRIX_CODES[spec.matrix]
    spec_code |= _RANGE_CODES[spec.range] << 1
    spec_code |= _DEPTH_CODES[spec.bit_depth] << 2
    return bytes([_HEADER_VERSION << 4 | spec_code]) + _varint(width) + _varint(height)


def unpack_header(data: bytes) -> tuple[colour.ColourSpec, int, int, int]:
    """Colour spec, height, width and payload offset of a stream made with :func:`pack_header`."""
    if not data or data[0] >> 4 != _HEADER_VERSION:
        raise CodecError("not a bench picture stream (bad header byte)")
    code = data[0] & 0x0F
    if code & 0x08:
        raise CodecError(f"unknown colour code {code:#x} in picture header")
    matrix = {v: k for k, v in _MATRIX_CODES.items()}[code & 1]
    range_ = {v: k for k, v in _RANGE_CODES.items()}[code >> 1 & 1]
    depth = {v: k for k, v in _DEPTH_CODES.items()}[code >> 2 & 1]
    width, offset = _read_varint(data, 1)
    height, offset = _read_varint(data, offset)
    if width < 1 or height < 1:
        raise CodecError(f"picture header holds an empty size {width}x{height}")
    return colour.ColourSpec(matrix, range_, depth), height, width, offset


class YuvFfmpegCodec(FfmpegCodec):
    """Base of the video codecs: raw 4:2:0 from :mod:`colour` in, raw 4:2:0 out.

    Encode: pad the RGB image to even size, and to :attr:`min_side` where the encoder needs
    more (edge replicate), convert with ``self.colour_spec``,
    write a planar ``.yuv`` file, let ffmpeg encode it into a raw elementary stream (no
    container) and prepend :func:`pack_header`. Decode: read the header, let ffmpeg decode to
    planar YUV of the padded size, convert back to RGB and crop to the original size.
    """

    #: ffmpeg muxer/demuxer of the raw elementary stream, and the file suffix.
    stream_format: ClassVar[str] = ""
    suffix: ClassVar[str] = ".bin"
    #: Smallest side the encoder accepts; smaller images are padded up to it (edge replicate).
    min_side: ClassVar[int] = 2

    def __init__(
        self,
        ffmpeg: str | Path | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        threads: int = 1,
        extra_qualities: Iterable[str] = (),
        colour_spec: colour.ColourSpec | None = None,
    ):
        super().__init__(ffmpeg, timeout, threads, extra_qualities)
        self.colour_spec = colour_spec or colour.ColourSpec()

    @abstractmethod
    def encoder_args(self, quality: str) -> list[str]:
        """ffmpeg output options (``-c:v`` onwards, before the output file) for ``quality``."""

    def coded_size(self, height: int, width: int) -> tuple[int, int]:
        """Size of the picture actually coded: even, and at least :attr:`min_side` a side."""
        return (
            max(height + height % 2, self.min_side),
            max(width + width % 2, self.min_side),
        )

    def _encode_failed(self, exc: CodecError, height: int, width: int, quality: str) -> CodecError:
        """The error of a failed encode of a ``height`` x ``width`` coded picture at
        ``quality``; codecs whose encoder has a known limit say which (ffmpeg's own
        message is kept)."""
        return exc

    def roi_args(self, roi: np.ndarray | None, height: int, width: int, quality: str) -> list[str]:
        """ffmpeg options that give the encoder the ROI of a ``height`` x ``width`` coded
        picture (e.g. an ``addroi`` filter); none unless the codec codes an ROI itself."""
        return []

    def encoder_argv(
        self, yuv_path: Path, out_path: Path, height: int, width: int, q: str,
        roi_args: Sequence[str] = (),
    ) -> list[str]:
        """Full ffmpeg argv that encodes one raw frame ``yuv_path`` into ``out_path``."""
        args = [
            "-f", "rawvideo", "-pix_fmt", self.colour_spec.pix_fmt, "-s", f"{width}x{height}",
            "-framerate", "1", "-i", str(yuv_path), *roi_args,
            "-frames:v", "1", *self.encoder_args(q), "-threads", str(self.threads),
            "-f", self.stream_format, str(out_path),
        ]  # fmt: skip
        return self.ffmpeg.command(args, self.threads)

    def decoder_argv(self, stream_path: Path, out_path: Path) -> list[str]:
        """Full ffmpeg argv that decodes ``stream_path`` into one planar frame ``out_path``.

        No ``-pix_fmt`` is given on purpose: the frame comes out in the decoder's own
        format, and a format other than the header's colour spec shows up as a size mismatch
        instead of being silently converted by ffmpeg's scaler.
        """
        args = [
            "-threads", str(self.threads), "-c:v", self.decoder,
            "-f", self.stream_format, "-i", str(stream_path),
            "-frames:v", "1", "-f", "rawvideo", str(out_path),
        ]  # fmt: skip
        return self.ffmpeg.command(args, self.threads)

    def encode(self, image: np.ndarray, roi: np.ndarray | None, quality: str) -> bytes:
        """Header + raw elementary stream of ``image`` at ``quality`` (``roi`` is used only
        by codecs whose :meth:`roi_args` give it to the encoder)."""
        check_image(image)
        self.check_quality(quality)
        height, width = image.shape[:2]
        padded = colour.pad_to(image, *self.coded_size(height, width))
        yuv = colour.rgb_to_yuv420(padded, self.colour_spec)
        roi_args = self.roi_args(roi, yuv.height, yuv.width, quality)
        with external.work_dir(self.name) as tmp:
            yuv_path = colour.write_yuv(tmp / "in.yuv", yuv)
            out_path = tmp / f"out{self.suffix}"
            argv = self.encoder_argv(yuv_path, out_path, yuv.height, yuv.width, quality,
                                     roi_args)
            try:
                self._run(argv, tmp, remember=True)
            except CodecError as exc:
                raise self._encode_failed(exc, yuv.height, yuv.width, quality) from None
            payload = self._read_output(out_path, "bitstream")
        return pack_header(self.colour_spec, height, width) + payload

    def decode(self, data: bytes) -> np.ndarray:
        """RGB image of a stream made by :meth:`encode`, cropped to the original size."""
        spec, height, width, offset = unpack_header(data)
        check_picture_size(height, width, f"{self.name} picture header")
        coded_h, coded_w = self.coded_size(height, width)
        with external.work_dir(self.name) as tmp:
            stream_path = tmp / f"in{self.suffix}"
            stream_path.write_bytes(data[offset:])
            out_path = tmp / "out.yuv"
            try:
                self._run(self.decoder_argv(stream_path, out_path), tmp, remember=False,
                          timeout=self.decode_timeout(coded_h, coded_w))
            except CodecError as exc:
                raise self._decode_failed(exc) from None
            raw = self._read_output(out_path, "decoded picture")
        try:
            yuv = colour.yuv_from_bytes(raw, coded_h, coded_w, spec.bit_depth)
        except ValueError as exc:
            raise CodecError(f"{self.decoder} decoded an unexpected picture: {exc}") from exc
        return colour.crop(colour.yuv420_to_rgb(yuv, spec), height, width)


class ImageFfmpegCodec(FfmpegCodec):
    """Base of image codecs whose own format stores the size (JPEG 2000, WebP, JPEG XL).

    No picture header is needed: the file ffmpeg writes is the whole bitstream (optionally
    trimmed by :meth:`postprocess`). The input is either the RGB image itself (``rgb24``) or,
    for codecs that code 4:2:0, planes from :mod:`bench.codecs.colour` (``yuv420p``), so the
    colour conversion is the audited one in both directions. Decoding writes a self-describing
    picture (PPM for RGB, YUV4MPEG2 for 4:2:0) and checks its format instead of letting ffmpeg
    convert.
    """

    #: ``rgb24`` or ``yuv420p``: what the encoder is fed and the decoder is expected to emit.
    input_pix_fmt: ClassVar[str] = "rgb24"
    #: ffmpeg muxer of the encoded file and demuxer to read it back, and the file suffix.
    muxer: ClassVar[str] = "image2"
    demuxer: ClassVar[str] = "image2"
    suffix: ClassVar[str] = ".bin"

    #: Conversion used when ``input_pix_fmt`` is ``yuv420p`` (8-bit BT.601 limited range).
    colour_spec: ClassVar[colour.ColourSpec] = colour.ColourSpec(bit_depth=8)

    @abstractmethod
    def encoder_args(self, quality: str, height: int, width: int) -> list[str]:
        """ffmpeg output options (``-c:v`` onwards) for ``quality`` on an image of this size."""

    def postprocess(self, stream: bytes) -> bytes:
        """Trim an encoded file before it is returned (default: unchanged)."""
        return stream

    def picture_size(self, data: bytes) -> tuple[int, int] | None:
        """Height and width the stream's own header declares, or None if it cannot tell.

        Read without decoding, to size the decode timeout and refuse absurd sizes before
        ffmpeg allocates them; the decoder still validates the whole stream.
        """
        return None

    def _raw_input(self, image: np.ndarray) -> bytes:
        """The image as ``input_pix_fmt`` rawvideo bytes."""
        if self.input_pix_fmt == "rgb24":
            return np.ascontiguousarray(image).tobytes()
        return colour.yuv_to_bytes(colour.rgb_to_yuv420(image, self.colour_spec))

    def encoder_argv(
        self, raw_path: Path, out_path: Path, height: int, width: int, q: str
    ) -> list[str]:
        """Full ffmpeg argv that encodes the raw picture ``raw_path`` into ``out_path``."""
        muxer = ["-f", self.muxer] + (["-update", "1"] if self.muxer == "image2" else [])
        args = [
            "-f", "rawvideo", "-pix_fmt", self.input_pix_fmt, "-s", f"{width}x{height}",
            "-framerate", "1", "-i", str(raw_path),
            "-frames:v", "1", *self.encoder_args(q, height, width),
            "-threads", str(self.threads), *muxer, str(out_path),
        ]  # fmt: skip
        return self.ffmpeg.command(args, self.threads)

    def decoder_argv(self, stream_path: Path, out_path: Path) -> list[str]:
        """Full ffmpeg argv that decodes ``stream_path`` into a PPM or YUV4MPEG2 picture."""
        if self.input_pix_fmt == "rgb24":
            output = ["-f", "image2", "-update", "1", "-c:v", "ppm", "-pix_fmt", "rgb24"]
        else:
            output = ["-f", "yuv4mpegpipe"]
        args = [
            "-threads", str(self.threads), "-c:v", self.decoder,
            "-f", self.demuxer, "-i", str(stream_path),
            "-frames:v", "1", *output, str(out_path),
        ]  # fmt: skip
        return self.ffmpeg.command(args, self.threads)

    def encode(self, image: np.ndarray, roi: np.ndarray | None, quality: str) -> bytes:
        """The codec's own file for ``image`` at ``quality`` (``roi`` is ignored)."""
        check_image(image)
        self.check_quality(quality)
        height, width = image.shape[:2]
        with external.work_dir(self.name) as tmp:
            raw_path = tmp / "in.raw"
            raw_path.write_bytes(self._raw_input(image))
            out_path = tmp / f"out{self.suffix}"
            argv = self.encoder_argv(raw_path, out_path, height, width, quality)
            self._run(argv, tmp, remember=True)
            return self.postprocess(self._read_output(out_path, "bitstream"))

    def decode(self, data: bytes) -> np.ndarray:
        """RGB image of a file made by :meth:`encode`."""
        out_name = "out.ppm" if self.input_pix_fmt == "rgb24" else "out.y4m"
        size = self.picture_size(data)
        if size is not None:
            check_picture_size(*size, f"{self.name} stream")
        timeout = self.decode_timeout(*(size or (None, None)))
        with external.work_dir(self.name) as tmp:
            stream_path = tmp / f"in{self.suffix}"
            stream_path.write_bytes(data)
            out_path = tmp / out_name
            try:
                self._run(self.decoder_argv(stream_path, out_path), tmp, remember=False,
                          timeout=timeout)
            except CodecError as exc:
                raise self._decode_failed(exc) from None
            picture = self._read_output(out_path, "decoded picture")
        try:
            if self.input_pix_fmt == "rgb24":
                return read_ppm(picture)
            return colour.yuv420_to_rgb(colour.yuv_from_y4m(picture), self.colour_spec)
        except ValueError as exc:
            raise CodecError(f"{self.decoder} decoded an unexpected picture: {exc}") from exc


def read_ppm(data: bytes) -> np.ndarray:
    """H x W x 3 uint8 image of a binary 8-bit PPM (P6) as ffmpeg writes it."""
    fields: list[bytes] = []
    pos = 0
    while len(fields) < 4:
        while pos < len(data) and data[pos : pos + 1].isspace():
            pos += 1
        if data[pos : pos + 1] == b"#":
            pos = data.index(b"\n", pos)
            continue
        end = pos
        while end < len(data) and not data[end : end + 1].isspace():
            end += 1
        if end == pos:
            raise ValueError("truncated PPM header")
        fields.append(data[pos:end])
        pos = end
    magic, width, height, maxval = fields[0], int(fields[1]), int(fields[2]), int(fields[3])
    if magic != b"P6" or maxval != 255:
        raise ValueError(f"expected an 8-bit P6 PPM, got {magic!r} with maxval {maxval}")
    pixels = data[pos + 1 : pos + 1 + height * width * 3]
    if len(pixels) != height * width * 3:
        raise ValueError("truncated PPM pixel data")
    return np.frombuffer(pixels, dtype=np.uint8).reshape(height, width, 3).copy()


def parse_prefixed(quality: str, prefix: str, lo: float, hi: float) -> float:
    """Number after ``prefix`` in a quality name such as ``qp37``, checked to lie in [lo, hi]."""
    if not quality.startswith(prefix):
        raise ValueError(f"quality {quality!r} does not start with {prefix!r}")
    try:
        value = float(quality[len(prefix) :])
    except ValueError:
        raise ValueError(f"quality {quality!r}: no number after {prefix!r}") from None
    if not lo <= value <= hi:
        raise ValueError(f"quality {quality!r}: {value:g} outside [{lo:g}, {hi:g}]")
    return value
