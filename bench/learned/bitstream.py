"""The container of the learned ROI codecs; every byte the decoder needs is in it.

Layout (all integers unsigned; ``varint`` = LEB128, 7 bits per byte)::

    byte 0        (FORMAT << 4) | (map_kind << 2) | entropy_kind
                  entropy_kind 0 = ggm, 1 = gaussian; map_kind 0 = uniform, 1 = palette
    varint H, varint W                 original image size (the decoder crops to it)
    uniform:  1 byte                   quality code q (q = code / 100)
    palette:  1 byte n (2..255), n bytes level codes (ascending),
              1 byte method (0 = raw, 1 = zlib, 2 = context rANS), varint L, L bytes:
              the latent-resolution level indexes (h×w, h = ceil(H/16), w = ceil(W/16)),
              row-major: raw and zlib bit-packed (1 bit) when n == 2 else one byte each;
              context rANS (n == 2 only) as :mod:`bench.learned.mapcoding` codes them
    varint Lz, Lz bytes                z string (EntropyBottleneck, rANS)
    the rest                           y string (GGM or Gaussian conditional, rANS)

The quality map is therefore sent losslessly at latent resolution (the decoder's SFT
layers and the hyper-decoder's head use nothing else). For ROI coding the map has two
levels: 10–100 bytes after zlib (67 on average on the shared val2017 pictures), 28 with
the context-modelled rANS string; a uniform map costs one byte.

Release 2's streams code two-level maps with zlib (:data:`MAP_CODING`); every decoder reads
both methods. The context coder becomes the written default with the next release of the
learned codecs, whose leaderboard rows are made again then, so that the committed rows stay
reproducible by the code that made them.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from bench.learned.mapcoding import decode_binary_map, encode_binary_map
from bench.varint import decode_varint, encode_varint

FORMAT = 1
ENTROPY_IDS = {"ggm": 0, "gaussian": 1}
#: How :func:`pack` codes a two-level map by default: ``"zlib"`` (the smaller of zlib and raw
#: bits, release 2's streams) or ``"context"`` (:mod:`bench.learned.mapcoding`).
MAP_CODING = "zlib"
MAP_METHODS = {"raw": 0, "zlib": 1, "context": 2}


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
    """Everything the bitstream carries."""

    entropy: str
    height: int
    width: int
    codes: np.ndarray  # h×w uint8 latent-resolution quality codes
    z: bytes
    y: bytes


def latent_size(height: int, width: int, stride: int = 16) -> tuple[int, int]:
    return -(-height // stride), -(-width // stride)


def pack(p: Payload, map_coding: str | None = None) -> bytes:
    """The bitstream of ``p``; ``map_coding`` (default :data:`MAP_CODING`) says how a
    two-level quality map is coded (maps of more levels: zlib or raw)."""
    map_coding = map_coding or MAP_CODING
    if map_coding not in ("zlib", "context"):
        raise ValueError(f"map_coding must be 'zlib' or 'context', got {map_coding!r}")
    levels = np.unique(p.codes)
    if p.codes.shape != latent_size(p.height, p.width):
        raise ValueError(f"code map {p.codes.shape} does not match image {p.height}×{p.width}")
    if len(levels) > 255:
        raise ValueError("at most 255 quality levels")
    uniform = len(levels) == 1
    out = bytearray([(FORMAT << 4) | ((0 if uniform else 1) << 2) | ENTROPY_IDS[p.entropy]])
    out += put_varint(p.height) + put_varint(p.width)
    if uniform:
        out.append(int(levels[0]))
    else:
        out.append(len(levels))
        out += bytes(int(v) for v in levels)
        index = np.searchsorted(levels, p.codes).astype(np.uint8)
        if len(levels) == 2 and map_coding == "context":
            method, body = MAP_METHODS["context"], encode_binary_map(index)
        else:
            index = index.ravel()
            raw = np.packbits(index).tobytes() if len(levels) == 2 else index.tobytes()
            packed = zlib.compress(raw, 9)
            method, body = (1, packed) if len(packed) < len(raw) else (0, raw)
        out.append(method)
        out += put_varint(len(body)) + body
    out += put_varint(len(p.z)) + p.z
    out += p.y
    return bytes(out)


def unpack(data: bytes) -> Payload:
    if len(data) < 4:
        raise BitstreamError("bitstream too short")
    head = data[0]
    if head >> 4 != FORMAT:
        raise BitstreamError(f"unknown bitstream format {head >> 4} (expected {FORMAT})")
    kinds = {v: k for k, v in ENTROPY_IDS.items()}
    if head & 3 not in kinds or (head >> 2) & 3 > 1:
        raise BitstreamError("invalid header byte")
    entropy, uniform = kinds[head & 3], ((head >> 2) & 3) == 0
    height, pos = get_varint(data, 1)
    width, pos = get_varint(data, pos)
    if not (0 < height <= 1 << 16 and 0 < width <= 1 << 16):
        raise BitstreamError(f"invalid image size {height}×{width}")
    h, w = latent_size(height, width)
    try:
        if uniform:
            codes = np.full((h, w), data[pos], np.uint8)
            pos += 1
        else:
            n = data[pos]
            levels = np.frombuffer(data[pos + 1: pos + 1 + n], np.uint8)
            method = data[pos + 1 + n]
            length, pos = get_varint(data, pos + 2 + n)
            body = data[pos: pos + length]
            if len(body) != length:
                raise BitstreamError("truncated quality map")
            pos += length
            context = method == MAP_METHODS["context"]
            if method not in MAP_METHODS.values() or (context and n != 2):
                raise BitstreamError(f"invalid quality map coding {method} for {n} levels")
            if context:
                index = decode_binary_map(body, h, w).ravel()
            else:
                raw = zlib.decompress(body) if method == 1 else body
                if n == 2:
                    index = np.unpackbits(np.frombuffer(raw, np.uint8))[: h * w]
                else:
                    index = np.frombuffer(raw, np.uint8)[: h * w]
            if index.size != h * w or len(levels) != n or int(index.max()) >= n:
                raise BitstreamError("corrupt quality map")
            codes = levels[index].reshape(h, w)
        zlen, pos = get_varint(data, pos)
    except BitstreamError:
        raise
    except (IndexError, ValueError, zlib.error) as exc:
        raise BitstreamError(f"truncated or corrupt bitstream: {exc}") from exc
    z = data[pos: pos + zlen]
    if len(z) != zlen:
        raise BitstreamError("truncated z string")
    return Payload(entropy, height, width, codes, bytes(z), bytes(data[pos + zlen:]))
