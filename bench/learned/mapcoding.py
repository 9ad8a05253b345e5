"""Lossless coding of a two-level latent quality map with compressai's rANS coder.

An ROI map at latent resolution (one bit per 16×16 block: ROI level or background level) is
mostly long runs with a few object outlines, which a general-purpose compressor codes badly.
Here each block is coded with a fixed probability chosen by its causal neighbourhood (left,
upper, upper-left and upper-right block; 0 outside the map), the context modelling of JBIG
(ITU-T T.82) in its simplest form, through compressai's rANS coder with one CDF per context.
On the 77 two-level maps of the shared val2017 pictures: 21.4 bytes of information per map,
27.5 bytes as rANS strings of their own (the coder's final state and word alignment), against
66.8 bytes for zlib (``benchmarks/map_coding.py``). Bitstream format 2 puts the blocks at the
start of the picture's one rANS string (:func:`write_binary_map`, :func:`read_binary_map`),
where they cost their information and no final state of their own.

The probabilities are counts over the 288 shared COCO train2017 pictures' GT ROI maps
(``python benchmarks/map_coding.py --fit`` measures them again; never val2017), fixed here
because the decoder must have exactly the encoder's tables.
"""

from __future__ import annotations

import functools

import numpy as np

#: Counts of (background, ROI) blocks per context ``left | up << 1 | up-left << 2 |
#: up-right << 3`` over the shared train2017 GT ROI maps at latent resolution.
CONTEXT_COUNTS = (
    (174787, 1458), (2245, 4553), (132, 130), (4, 135), (1688, 15), (3693, 1774),
    (1029, 82), (866, 7280), (5098, 1017), (97, 746), (1837, 5504), (33, 1883),
    (188, 19), (347, 273), (2947, 1635), (876, 86821),
)
#: Precision of the CDF tables (bits), compressai's default.
PRECISION = 16


@functools.cache
def tables() -> tuple[list[list[int]], list[int], list[int]]:
    """(CDFs, CDF lengths, offsets) of the contexts, built once."""
    from compressai._CXX import pmf_to_quantized_cdf

    cdfs = []
    for zeros, ones in CONTEXT_COUNTS:
        total = zeros + ones + 1.0
        # symbols 0 and 1, then compressai's overflow symbol, which a valid map never uses
        cdfs.append(pmf_to_quantized_cdf([(zeros + 0.5) / total, (ones + 0.5) / total, 1e-9],
                                         PRECISION))
    return cdfs, [len(c) for c in cdfs], [0] * len(cdfs)


def contexts(bits: np.ndarray) -> np.ndarray:
    """The context index of every block of a 0/1 map (same shape)."""
    h, w = bits.shape
    pad = np.zeros((h + 1, w + 2), np.uint8)
    pad[1:, 1:-1] = bits
    return pad[1:, :-2] | pad[:-1, 1:-1] << 1 | pad[:-1, :-2] << 2 | pad[:-1, 2:] << 3


def count_contexts(maps) -> tuple[tuple[int, int], ...]:
    """(0s, 1s) per context over 0/1 ``maps``: how :data:`CONTEXT_COUNTS` is measured."""
    counts = np.zeros((16, 2), np.int64)
    for bits in maps:
        bits = np.asarray(bits, np.uint8)
        np.add.at(counts, (contexts(bits).ravel(), bits.ravel()), 1)
    return tuple((int(a), int(b)) for a, b in counts)


def information_bits(bits: np.ndarray) -> float:
    """What a 0/1 map costs under the coder's own tables: the sum of ``-log2`` of each
    block's quantized probability in its context. A string of the map alone adds the rANS
    final state and word alignment; inside format 2's shared string the map costs this."""
    cdfs, _, _ = tables()
    bits = np.asarray(bits, np.uint8)
    freq = np.array([[c[1] - c[0], c[2] - c[1]] for c in cdfs], np.float64)
    return float(-np.log2(freq[contexts(bits), bits] / (1 << PRECISION)).sum())


def write_binary_map(encoder, bits: np.ndarray) -> None:
    """Append a 0/1 map (raster order) to a compressai ``BufferedRansEncoder``; the decoder
    reads it back with :func:`read_binary_map`, given the shape."""
    bits = np.asarray(bits, np.uint8)
    if bits.ndim != 2 or bits.size == 0 or int(bits.max()) > 1:
        raise ValueError(f"want a non-empty 2-D map of 0 and 1, got shape {bits.shape}")
    cdfs, lengths, offsets = tables()
    symbols = bits.ravel().astype(np.int32).tolist()
    indexes = contexts(bits).ravel().astype(np.int32).tolist()
    encoder.encode_with_indexes(symbols, indexes, cdfs, lengths, offsets)


def read_binary_map(decoder, height: int, width: int) -> np.ndarray:
    """The next ``height``×``width`` 0/1 map (uint8) from a compressai ``RansDecoder`` whose
    stream is set, as :func:`write_binary_map` wrote it.

    Block by block, since each context depends on the blocks decoded before it. Raises
    ``ValueError`` when the stream yields anything but 0 and 1 (a corrupt stream).
    """
    cdfs, lengths, offsets = tables()
    pad = np.zeros((height + 1, width + 2), np.int32)
    for i in range(height):
        up, row = pad[i], pad[i + 1]
        for j in range(width):
            ctx = int(row[j] | up[j + 1] << 1 | up[j] << 2 | up[j + 2] << 3)
            value = decoder.decode_stream([ctx], cdfs, lengths, offsets)[0]
            if value not in (0, 1):
                raise ValueError("corrupt quality map string")
            row[j + 1] = value
    return pad[1:, 1:-1].astype(np.uint8)


def encode_binary_map(bits: np.ndarray) -> bytes:
    """The map alone as one rANS string (the decoder must know its shape)."""
    from compressai.ans import BufferedRansEncoder

    encoder = BufferedRansEncoder()
    write_binary_map(encoder, bits)
    if np.asarray(bits).size == 1:  # compressai 1.2.8's encoder corrupts its heap on one
        encoder.encode_with_indexes([0], [0], *tables())  # symbol: pad (the decoder reads h×w)
    return encoder.flush()


def decode_binary_map(data: bytes, height: int, width: int) -> np.ndarray:
    """The 0/1 map (``height``×``width``, uint8) of :func:`encode_binary_map`'s string."""
    from compressai.ans import RansDecoder

    from bench.learned.coding import padded

    if len(data) < 8:  # a rANS string holds at least the coder's 64-bit final state
        raise ValueError(f"quality map string of {len(data)} bytes is too short")
    decoder = RansDecoder()
    decoder.set_stream(padded(bytes(data), height * width))  # a corrupt one reads no further
    return read_binary_map(decoder, height, width)
