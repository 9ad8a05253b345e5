"""The container of the learned ROI codecs; every byte the decoder needs is in it.

Layout (all integers unsigned; ``varint`` = LEB128, 7 bits per byte)::

    byte 0        (format << 4) | (map_kind << 2) | entropy_kind
                  format 1, 2 or 3; entropy_kind 0 = ggm, 1 = gaussian; map_kind 0 = uniform,
                  1 = palette
    varint H, varint W                 original image size (the decoder crops to it)
    uniform:  1 byte                   quality code q (q = code / 100)
    palette:  1 byte n (2..255), n bytes level codes (ascending), then
      format 1, or format 2/3 with n > 2:
              1 byte method (0 = raw, 1 = zlib), varint L, L bytes: the latent-resolution
              level indexes (h×w, h = ceil(H/16), w = ceil(W/16)), row-major, bit-packed
              (1 bit) when n == 2 else one byte each
      format 2/3 with n == 2: nothing here; the blocks open the rANS string
    format 1: varint Lz, Lz bytes      z string (EntropyBottleneck, rANS)
              the rest                 y string (GGM or Gaussian conditional, rANS)
    format 2: the rest                 one rANS string: a two-level map's blocks
                                       (:mod:`bench.learned.mapcoding`'s contexts), then
                                       z, then y (:mod:`bench.learned.stream`)
    format 3: as format 2; encoder and decoder compute the entropy parameters in float64
              (:meth:`bench.learned.network.RoiHyperprior.compress`), so that a decoder on
              another CPU kind is far less likely to pick another rANS table than the
              encoder did (:mod:`bench.learned.coding`, "Determinism")

The quality map is therefore sent losslessly at latent resolution (the decoder's SFT
layers and the hyper-decoder's head use nothing else). A two-level (ROI) map costs 10–100
bytes after zlib in format 1 (67 on average on the shared val2017 pictures) and about 21
bytes of the shared string in format 2; a uniform map costs one byte.

Release 3 (the release-3 recipe's 40,000 steps) writes format 3 (:data:`FORMAT_WRITTEN`),
whose entropy parameters are computed in float64 so that another CPU kind decodes what this
one encoded; release 2 final wrote format 2, which decodes exactly only on the CPU kind that
encoded it, and releases 1 and 2 at step 10,000 wrote format 1. Every decoder reads all
three.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from bench.learned.qmap import Q_STEPS
from bench.varint import decode_varint, encode_varint

FORMATS = (1, 2, 3)
#: The format :func:`bench.learned.coding.encode_image` writes by default.
FORMAT_WRITTEN = 3
ENTROPY_IDS = {"ggm": 0, "gaussian": 1}
MAP_METHODS = {"raw": 0, "zlib": 1}


class BitstreamError(ValueError):
    """Bytes that are not a valid learned-codec bitstream."""


def put_varint(value: int) -> bytes:
    """LEB128 bytes of a non-negative integer (see :mod:`bench.varint`)."""
    return encode_varint(value)


def get_varint(data: bytes, pos: int) -> tuple[int, int]:
    """(value, next position) of the LEB128 number at ``data[pos:]``."""
    try:
        return decode_varint(data, pos)
    except ValueError as exc:
        raise BitstreamError("truncated or invalid varint") from exc


@dataclass
class Payload:
    """Everything the bitstream carries.

    Format 1: ``codes`` and the ``z`` and ``y`` strings. Formats 2 and 3: ``stream`` (one
    rANS string) and ``codes``; after :func:`unpack` of a two-level map, ``codes`` is None
    and ``levels`` holds the two level codes: the blocks are the stream's first symbols.
    Format 3 is format 2 with ``params64``: entropy parameters computed in float64.
    """

    entropy: str
    height: int
    width: int
    codes: np.ndarray | None  # h×w uint8 latent-resolution quality codes
    z: bytes = b""
    y: bytes = b""
    stream: bytes | None = None
    levels: tuple[int, ...] = ()
    params64: bool = False

    @property
    def format(self) -> int:
        if self.stream is None:
            return 1
        return 3 if self.params64 else 2

    @property
    def map_in_stream(self) -> bool:
        """Whether the quality map's blocks open the rANS string (format 2/3, two levels)."""
        return self.format >= 2 and map_in_stream(self.codes if self.codes is not None
                                                  else np.array(self.levels))


def map_in_stream(codes: np.ndarray) -> bool:
    """Whether formats 2 and 3 code this map in the rANS string: exactly two levels."""
    return len(np.unique(codes)) == 2


def latent_size(height: int, width: int, stride: int = 16) -> tuple[int, int]:
    return -(-height // stride), -(-width // stride)


def pack(p: Payload) -> bytes:
    """The bitstream of ``p``: format 1 when it has ``z``/``y`` strings, format 2 (3 with
    ``params64``) when it has a ``stream`` (the caller has put a two-level map's blocks at its
    start)."""
    if p.params64 and p.stream is None:
        raise ValueError("params64 (format 3) needs a stream")
    if p.codes is None or p.codes.shape != latent_size(p.height, p.width):
        shape = None if p.codes is None else p.codes.shape
        raise ValueError(f"code map {shape} does not match image {p.height}×{p.width}")
    levels = np.unique(p.codes)
    if len(levels) > 255:
        raise ValueError("at most 255 quality levels")
    uniform = len(levels) == 1
    out = bytearray([(p.format << 4) | ((0 if uniform else 1) << 2) | ENTROPY_IDS[p.entropy]])
    out += put_varint(p.height) + put_varint(p.width)
    if uniform:
        out.append(int(levels[0]))
    else:
        out.append(len(levels))
        out += bytes(int(v) for v in levels)
        if not p.map_in_stream:
            index = np.searchsorted(levels, p.codes).astype(np.uint8).ravel()
            raw = np.packbits(index).tobytes() if len(levels) == 2 else index.tobytes()
            packed = zlib.compress(raw, 9)
            method, body = (1, packed) if len(packed) < len(raw) else (0, raw)
            out.append(method)
            out += put_varint(len(body)) + body
    if p.format == 1:
        out += put_varint(len(p.z)) + p.z
        out += p.y
    else:
        out += p.stream
    return bytes(out)


def unpack(data: bytes) -> Payload:
    """The :class:`Payload` of a bitstream (any format); :class:`BitstreamError` if the
    bytes are not one."""
    if len(data) < 4:
        raise BitstreamError("bitstream too short")
    head = data[0]
    fmt = head >> 4
    if fmt not in FORMATS:
        raise BitstreamError(f"unknown bitstream format {fmt} (this bench reads {FORMATS})")
    kinds = {v: k for k, v in ENTROPY_IDS.items()}
    if head & 3 not in kinds or (head >> 2) & 3 > 1:
        raise BitstreamError("invalid header byte")
    entropy, uniform = kinds[head & 3], ((head >> 2) & 3) == 0
    height, pos = get_varint(data, 1)
    width, pos = get_varint(data, pos)
    if not (0 < height <= 1 << 16 and 0 < width <= 1 << 16):
        raise BitstreamError(f"invalid image size {height}×{width}")
    h, w = latent_size(height, width)
    levels: tuple[int, ...] = ()
    try:
        if uniform:
            if data[pos] > Q_STEPS:
                raise BitstreamError(f"quality code {data[pos]} above {Q_STEPS}: corrupt")
            codes = np.full((h, w), data[pos], np.uint8)
            pos += 1
        else:
            n = data[pos]
            levels_array = np.frombuffer(data[pos + 1: pos + 1 + n], np.uint8)
            if (n < 2 or len(levels_array) != n or np.any(np.diff(levels_array.astype(int)) <= 0)
                    or int(levels_array[-1]) > Q_STEPS):
                raise BitstreamError("corrupt quality map levels")
            pos += 1 + n
            if fmt >= 2 and n == 2:
                codes, levels = None, tuple(int(v) for v in levels_array)
            else:
                codes, pos = _read_map_body(data, pos, levels_array, h, w)
        if fmt == 1:
            zlen, pos = get_varint(data, pos)
    except BitstreamError:
        raise
    except (IndexError, ValueError, zlib.error) as exc:
        raise BitstreamError(f"truncated or corrupt bitstream: {exc}") from exc
    if fmt >= 2:
        return Payload(entropy, height, width, codes, stream=bytes(data[pos:]), levels=levels,
                       params64=fmt == 3)
    z = data[pos: pos + zlen]
    if len(z) != zlen:
        raise BitstreamError("truncated z string")
    return Payload(entropy, height, width, codes, bytes(z), bytes(data[pos + zlen:]))


def _read_map_body(data: bytes, pos: int, levels: np.ndarray, h: int, w: int
                   ) -> tuple[np.ndarray, int]:
    """The code map of a raw or zlib map body at ``data[pos:]`` and the position after it."""
    n = len(levels)
    method = data[pos]
    length, pos = get_varint(data, pos + 1)
    body = data[pos: pos + length]
    if len(body) != length:
        raise BitstreamError("truncated quality map")
    if method not in MAP_METHODS.values():
        raise BitstreamError(f"invalid quality map coding {method} for {n} levels")
    need = -(-h * w // 8) if n == 2 else h * w  # bytes of the map: bits or one per block
    if method == 1:  # at most what the map needs: a zlib bomb inflates no further
        inflate = zlib.decompressobj()
        raw = inflate.decompress(body, need)
        if not inflate.eof or inflate.unconsumed_tail or inflate.unused_data:
            raise BitstreamError("corrupt quality map (its zlib body is not the map's size)")
    else:
        raw = body
    if len(raw) != need:
        raise BitstreamError("corrupt quality map (not the size of the picture's map)")
    if n == 2:
        index = np.unpackbits(np.frombuffer(raw, np.uint8), count=h * w)
    else:
        index = np.frombuffer(raw, np.uint8)
    if int(index.max()) >= n:
        raise BitstreamError("corrupt quality map")
    return levels[index].reshape(h, w), pos + length
