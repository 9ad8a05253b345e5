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


def test_context_coded_maps_in_the_container(coco_root):
    bits = _roi_maps(coco_root, "val2017", limit=3)[0]
    h, w = bits.shape
    codes = np.where(bits == 1, 56, 11).astype(np.uint8)
    p = Payload("ggm", 16 * h, 16 * w, codes, b"zzzz", b"yyyyy")
    assert latent_size(p.height, p.width) == codes.shape
    small, old = pack(p, map_coding="context"), pack(p, map_coding="zlib")
    assert len(small) < len(old)
    for data in (small, old):  # the decoder reads both
        q = unpack(data)
        assert np.array_equal(q.codes, codes) and (q.z, q.y) == (p.z, p.y)
    with pytest.raises(BitstreamError, match="truncated"):
        unpack(small[:12])  # the map's string cut short
    three = Payload("ggm", 32, 32, np.array([[0, 1], [2, 1]], np.uint8), b"zzzz", b"y")
    with pytest.raises(ValueError, match="map_coding"):
        pack(three, map_coding="lzma")
    # more than two levels: the context coder does not apply, zlib or raw bytes do
    assert unpack(pack(three, map_coding="context")).codes.tolist() == [[0, 1], [2, 1]]


def test_too_short_strings_are_refused():
    with pytest.raises(ValueError, match="too short"):
        decode_binary_map(b"\x01\x02", 3, 3)


@pytest.mark.slow
def test_context_counts_are_the_train2017_maps_counts(coco_root):
    if not (coco_root / "annotations" / "instances_train2017.json").is_file():
        pytest.skip("no shared train2017 annotations")
    assert count_contexts(_roi_maps(coco_root, "train2017")) == CONTEXT_COUNTS
