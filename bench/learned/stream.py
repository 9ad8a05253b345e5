"""One rANS string for a whole picture: quality map, ``z`` and ``y`` (bitstream format 2).

Format 1 codes ``z`` and ``y`` as two rANS strings (and a two-level quality map as a zlib
body), each closed by the coder's 64-bit final state and each but the last preceded by its
length. Format 2 appends every symbol to one compressai ``BufferedRansEncoder`` (the map's
blocks first, then ``z``, then ``y``) and the decoder reads them back in that order from one
``RansDecoder`` with ``decode_stream``: one final state and no lengths, about 20 bytes less
per picture, which is most of the whole file's excess over the model's estimate at low
rates. The symbols and tables are the same as format 1's, so the rate estimate is unchanged.

This module holds the part compressai's ``EntropyBottleneck`` has no stream form of; the
conditionals take ``encoder=``/``decoder=`` themselves and the map is
:func:`bench.learned.mapcoding.write_binary_map`/``read_binary_map``.
"""

from __future__ import annotations

import functools
import struct

from torch import Tensor

from bench.entropy.rans import compressai_tables, read_symbols, write_symbols


def _bottleneck_coding(eb, shape: tuple[int, ...]) -> tuple[Tensor, Tensor, tuple]:
    """Table index and median per element of a ``z`` of ``shape`` (B×C×h×w), and the
    tables as the rANS coder takes them: exactly what compressai's ``EntropyBottleneck``
    uses in ``compress``/``decompress``."""
    tables = compressai_tables(eb)
    indexes = eb._build_indexes(shape)
    medians = eb._get_medians().detach().reshape(1, -1, 1, 1).expand(shape)
    return indexes, medians, tables


def write_bottleneck(encoder, eb, z: Tensor) -> Tensor:
    """Append ``z``'s symbols (median-centred rounding) to ``encoder``; return ``z_hat``,
    the decoder's values."""
    indexes, medians, tables = _bottleneck_coding(eb, tuple(z.shape))
    symbols = eb.quantize(z, "symbols", medians)
    write_symbols(encoder, symbols, indexes, tables)
    return eb.dequantize(symbols, medians)


def read_bottleneck(decoder, eb, shape: tuple[int, ...]) -> Tensor:
    """``z_hat`` of ``shape`` from the stream's next symbols."""
    indexes, medians, tables = _bottleneck_coding(eb, tuple(shape))
    return eb.dequantize(read_symbols(decoder, indexes, tables), medians)


class StreamEndError(ValueError):
    """The rANS stream did not end where the picture's symbols did (:func:`check_stream_end`)."""


#: symbols decoded past a picture's last one by :func:`check_stream_end`
END_PROBES = 8
#: their table: symbol 0 has the single lowest slot of compressai's 16-bit code space, so it
#: decodes only from a state whose low 16 bits are zero, and then shifts them out
_PROBE_TABLE = ([[0, 1, (1 << 16) - 1, 1 << 16]], [4], [0])
#: the first word of the padding after a rANS string (:func:`bench.learned.coding.padded`;
#: zeros follow): non-zero, so that a decoder whose state ran down to zero in the padding (a
#: string cut short) does not decode what the start state does from it
PAD_MARK = bytes((0x00, 0x00, 0xCD, 0xAB))


@functools.lru_cache(maxsize=1)
def _end_probes() -> tuple[int, ...]:
    """What the probes decode right after a valid stream's last symbol: from the encoder's
    start state (2**31, as Rans64's flush writes it: two native 32-bit words, low first;
    compressai's own flush of no symbols crashes) followed by the same padding."""
    from compressai.ans import RansDecoder

    decoder = RansDecoder()
    start = struct.pack("=II", 1 << 31, 0)
    decoder.set_stream(start + PAD_MARK + bytes(8 * END_PROBES))
    return tuple(decoder.decode_stream([0] * END_PROBES, *_PROBE_TABLE))


def check_stream_end(decoder) -> None:
    """Raise :class:`StreamEndError` unless the rANS stream ended where the picture's symbols did.

    rANS decoding retraces the encoder's states in reverse, so after a valid stream's last
    symbol the decoder is back in the encoder's start state (compressai's Rans64: 2**31) and
    about to read the padding, and :data:`END_PROBES` symbols decode from there exactly what
    they decode after an empty stream. Each probe tests the state's low 16 bits (symbol 0
    only where they are all zero) and shifts them out, so any other state (of a truncated or
    corrupt stream, or of one decoded with other tables than it was written with: other
    weights, or float kernels that pick other tables, as format 2 can on another CPU kind)
    gives itself away within a few probes. No bit is spent on it. Not seen: damage inside
    the bypass-coded bits of an escaped value (coded raw, so the decoder keeps sync and only
    that value changes), about 1 % of single-bit flips at a high-rate point.
    """
    got = tuple(decoder.decode_stream([0] * END_PROBES, *_PROBE_TABLE))
    if got != _end_probes():
        raise StreamEndError("the rANS stream does not end where the picture's symbols do: it "
                             "is truncated or corrupt, or was written with other weights or "
                             "tables than this decoder's")
