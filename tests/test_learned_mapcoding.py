"""The context-modelled rANS coding of two-level quality maps: lossless on real and generated
maps, smaller than zlib on real ROI maps, corrupt strings refused, and the fixed context
counts are the ones the shared train2017 pictures give."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from bench.data.coco import CocoDataset
from bench.learned.bitstream import BitstreamError, Payload, latent_size, pack, unpack
from bench.learned.coding import model_inputs
from bench.learned.mapcoding import (
    CONTEXT_COUNTS,
    contexts,
    count_contexts,
    decode_binary_map,
    encode_binary_map,
    information_bits,
    tables,
)
from bench.learned.qmap import GRID


def _roi_maps(root, split: str, limit: int | None = None) -> list[np.ndarray]:
    maps = []
    for sample in CocoDataset(root, split, limit=limit):
        _, _, _, codes = model_inputs(sample.image, sample.roi, GRID[0], "gt")
        codes = np.asarray(codes)
        if codes.min() != codes.max():
            maps.append((codes == codes.max()).astype(np.uint8))
    return maps


def test_contexts_look_left_up_upleft_upright():
    ctx = contexts(np.array([[1, 0, 0], [0, 0, 0]], np.uint8))
    assert ctx.tolist() == [[0, 1, 0], [2, 4, 0]]  # left = 1, up = 2, up-left = 4
    assert contexts(np.array([[0, 1], [0, 0]], np.uint8))[1, 0] == 8  # up-right


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (7, 1), (30, 40)])
def test_generated_maps_round_trip(shape):
    rng = np.random.default_rng(shape[0] * 100 + shape[1])
    for density in (0.0, 0.05, 0.5, 1.0):
        bits = (rng.random(shape) < density).astype(np.uint8)
        assert np.array_equal(decode_binary_map(encode_binary_map(bits), *shape), bits)


def test_real_roi_maps_round_trip_in_less_than_half_of_zlib(coco_root):
    maps = _roi_maps(coco_root, "val2017", limit=12)
    assert len(maps) >= 8
    ctx = zl = 0
    for bits in maps:
        data = encode_binary_map(bits)
        assert np.array_equal(decode_binary_map(data, *bits.shape), bits)
        raw = np.packbits(bits.ravel()).tobytes()
        ctx, zl = ctx + len(data), zl + min(len(raw), len(zlib.compress(raw, 9)))
    assert ctx < 0.5 * zl, (ctx, zl)


def test_format_2_leaves_a_two_level_map_to_the_stream(coco_root):
    bits = _roi_maps(coco_root, "val2017", limit=3)[0]
    h, w = bits.shape
    codes = np.where(bits == 1, 56, 11).astype(np.uint8)
    p2 = Payload("ggm", 16 * h, 16 * w, codes, stream=b"ssssss")
    p1 = Payload("ggm", 16 * h, 16 * w, codes, b"zzzz", b"yyyyy")
    assert latent_size(p2.height, p2.width) == codes.shape
    data2, data1 = pack(p2), pack(p1)
    # format 2 header: byte 0, H, W (2 varint bytes each), n, 2 levels, then the stream
    assert data2 == data2[:8] + p2.stream and len(data2) == 8 + len(p2.stream)
    q2 = unpack(data2)
    assert q2.format == 2 and q2.codes is None and q2.levels == (11, 56) and q2.map_in_stream
    assert q2.stream == p2.stream
    q1 = unpack(data1)  # format 1 keeps its zlib body
    assert q1.format == 1 and np.array_equal(q1.codes, codes) and (q1.z, q1.y) == (p1.z, p1.y)
    with pytest.raises(BitstreamError, match="levels"):
        unpack(data2[:6] + bytes([56, 11]) + p2.stream)  # levels not ascending
    # more than two levels: the map stays a zlib or raw body in the header
    three = Payload("ggm", 32, 32, np.array([[0, 1], [2, 1]], np.uint8), stream=b"s" * 8)
    q3 = unpack(pack(three))
    assert q3.codes.tolist() == [[0, 1], [2, 1]] and q3.stream == three.stream
    assert not q3.map_in_stream


def test_maps_share_one_stream_with_other_symbols():
    from compressai.ans import BufferedRansEncoder, RansDecoder

    from bench.learned.mapcoding import read_binary_map, tables, write_binary_map

    rng = np.random.default_rng(3)
    bits = (rng.random((9, 13)) < 0.3).astype(np.uint8)
    cdfs, lengths, offsets = tables()
    encoder = BufferedRansEncoder()
    write_binary_map(encoder, bits)
    encoder.encode_with_indexes([1, 0, 1], [15, 0, 3], cdfs, lengths, offsets)
    decoder = RansDecoder()
    decoder.set_stream(encoder.flush())
    assert np.array_equal(read_binary_map(decoder, 9, 13), bits)
    assert decoder.decode_stream([15, 0, 3], cdfs, lengths, offsets) == [1, 0, 1]


def test_information_is_what_the_string_costs_but_its_final_state(coco_root):
    cdfs = tables()[0]
    zero_in_context_0 = cdfs[0][1] - cdfs[0][0]
    assert information_bits(np.zeros((1, 1), np.uint8)) == pytest.approx(
        -np.log2(zero_in_context_0 / 65536))
    for bits in _roi_maps(coco_root, "val2017", limit=6):
        info = information_bits(bits)
        # a string of its own adds what the coder's 64-bit final state holds beyond the
        # symbols: its initial 31 bits, which carry nothing, and up to 32 bits of word
        # alignment (41-63 bits on these maps)
        assert 24 < 8 * len(encode_binary_map(bits)) - info <= 31 + 32 + 8, info


def test_too_short_strings_are_refused():
    with pytest.raises(ValueError, match="too short"):
        decode_binary_map(b"\x01\x02", 3, 3)


@pytest.mark.slow
def test_context_counts_are_the_train2017_maps_counts(coco_root):
    if not (coco_root / "annotations" / "instances_train2017.json").is_file():
        pytest.skip("no shared train2017 annotations")
    assert count_contexts(_roi_maps(coco_root, "train2017")) == CONTEXT_COUNTS
