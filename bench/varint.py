"""Unsigned LEB128 integers (7 bits a byte, low bits first), used in bitstream headers.

One implementation for every bitstream the project writes, so sizes and headers are coded
the same way everywhere; callers turn :class:`ValueError` into their own error type.
"""

from __future__ import annotations


def encode_varint(value: int) -> bytes:
    """The LEB128 bytes of a non-negative integer."""
    if value < 0:
        raise ValueError(f"a varint must be non-negative, got {value}")
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def decode_varint(data: bytes, offset: int, max_bits: int = 64) -> tuple[int, int]:
    """(value, next offset) of the LEB128 number at ``data[offset:]``.

    Raises ValueError when the number runs past the data or beyond ``max_bits``.
    """
    value = shift = 0
    while True:
        if offset >= len(data) or shift >= max_bits:
            raise ValueError("truncated or invalid varint")
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, offset
