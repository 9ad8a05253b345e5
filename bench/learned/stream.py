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
END_PROBES = 32
#: their table: symbol 0 takes half of compressai's 16-bit code space, symbol 1 the rest but
#: the escape's single slot
_PROBE_TABLE = ([[0, 1 << 15, (1 << 16) - 1, 1 << 16]], [4], [0])


def check_stream_end(decoder) -> None:
    """Raise :class:`StreamEndError` unless the rANS stream ended where the picture's symbols did.

    rANS decoding retraces the encoder's states in reverse, so after a valid stream's last
    symbol the decoder is back in the encoder's initial state (compressai's Rans64: 2**31,
    whose low 16 bits are zero), from which a table giving symbol 0 the lower half of the
    code space decodes 0 for ever (reading only the zeros of
    :func:`bench.learned.coding.padded`). A truncated or corrupt stream, or one decoded with
    other tables than it was written with (other weights; or float kernels that pick other
    tables, as format 2 can on another CPU kind) leaves the decoder in another state, and
    :data:`END_PROBES` zeros then have a chance of about 2**-32. No bit is spent on it.
    """
    got = decoder.decode_stream([0] * END_PROBES, *_PROBE_TABLE)
    if any(got):
        raise StreamEndError("the rANS stream does not end where the picture's symbols do: it "
                         "is truncated or corrupt, or was written with other weights or "
                         "tables than this decoder's")
