"""Quality maps of the learned ROI codecs: grid, ROI maps, latent maps, training generators."""

from __future__ import annotations

import numpy as np
import pytest

from bench.learned import qmap
from bench.learned.bitstream import BitstreamError, Payload, latent_size, pack, unpack


def test_grid_is_ordered_and_in_range():
    assert len(qmap.GRID) >= 6
    for a, b in zip(qmap.GRID, qmap.GRID[1:], strict=False):
        assert a.roi <= b.roi and a.bg <= b.bg and a.uniform < b.uniform
        assert (a.roi, a.bg) != (b.roi, b.bg)
    for p in qmap.GRID:
        assert 0 <= p.bg < p.roi <= qmap.Q_STEPS and 0 <= p.uniform <= qmap.Q_STEPS
    with pytest.raises(ValueError, match="q1"):
        qmap.grid_point("nope")


def test_lambda_spans_the_range():
    assert qmap.lambda_of_q(0.0) == pytest.approx(0.001)
    assert qmap.lambda_of_q(1.0) == pytest.approx(0.1)
    arr = qmap.lambda_of_q(np.array([0.0, 0.5, 1.0]))
    assert arr[1] == pytest.approx(0.01)


def test_code_map_from_roi_and_uniform():
    roi = np.zeros((20, 30), bool)
    roi[2:5, 3:9] = True
    p = qmap.grid_point("q4")
    codes = qmap.code_map((20, 30), roi, p)
    assert codes.dtype == np.uint8 and set(np.unique(codes)) == {p.roi, p.bg}
    assert (codes[roi] == p.roi).all() and (codes[~roi] == p.bg).all()
    assert (qmap.code_map((20, 30), roi, p, "none") == p.uniform).all()
    assert (qmap.code_map((20, 30), None, p) == p.uniform).all()
    with pytest.raises(ValueError):
        qmap.code_map((20, 31), roi, p)


def test_latent_map_is_block_max_of_padded_map():
    roi = np.zeros((37, 53), bool)
    roi[20, 40] = True  # one pixel: its block gets the ROI quality
    p = qmap.grid_point("q2")
    codes = qmap.pad_to_multiple(qmap.code_map(roi.shape, roi, p))
    assert codes.shape == (48, 64)
    lat = qmap.block_max(codes)
    assert lat.shape == latent_size(37, 53) == (3, 4)
    assert lat[1, 2] == p.roi and (lat.sum() - p.roi) == p.bg * 11


def test_training_generators():
    rng = np.random.default_rng(0)
    labels = np.zeros((32, 48), np.uint8)
    labels[4:10, 5:20] = 1
    labels[15:30, 30:40] = 2
    mix = dict.fromkeys(qmap.GENERATORS, 1.0)  # every generator, e.g. release 2's "roi"
    seen = set()
    for _ in range(80):
        q, kind = qmap.random_qmap(32, 48, rng, labels, mix)
        seen.add(kind)
        assert q.shape == (32, 48) and q.dtype == np.float32
        assert q.min() >= 0.0 and q.max() <= 1.0
    assert seen == set(qmap.GENERATORS)
    for _ in range(20):  # no labels: never a generator that needs them
        assert qmap.random_qmap(16, 16, rng, None, mix)[1] not in qmap.NEEDS_LABELS
    inst = qmap.instance_qmap(labels, rng)
    for k in (0, 1, 2):
        assert np.unique(inst[labels == k]).size == 1  # one level per instance
    grad = qmap.gradient_qmap(16, 16, rng)
    assert np.unique(grad).size > 4


@pytest.mark.parametrize("fmt", [1, 2])
@pytest.mark.parametrize("levels", [[40], [10, 70], [0, 30, 100]])
def test_bitstream_round_trip(levels, fmt):
    rng = np.random.default_rng(1)
    h, w = latent_size(70, 90)
    codes = np.array(levels, np.uint8)[rng.integers(0, len(levels), (h, w))]
    if fmt == 1:
        p = Payload("gaussian", 70, 90, codes, b"zz\x00z", b"yyyy\x01")
    else:
        p = Payload("gaussian", 70, 90, codes, stream=b"ss\x00sss\x01")
    data = pack(p)
    q = unpack(data)
    assert (q.entropy, q.height, q.width, q.format) == ("gaussian", 70, 90, fmt)
    assert (q.z, q.y, q.stream) == (p.z, p.y, p.stream)
    if len(levels) == 2 and fmt == 2:  # the blocks are the stream's first symbols
        assert q.codes is None and q.levels == tuple(levels)
    else:
        assert np.array_equal(q.codes, codes)
    if len(levels) == 1:  # header: byte 0, H, W, code (and z's length in format 1)
        assert len(data) == 4 + (1 + len(p.z) + len(p.y) if fmt == 1 else len(p.stream))
    with pytest.raises(BitstreamError):
        unpack(b"\x00" + data[1:])


def test_latent_density_fits_prefer_the_true_family():
    from bench.learned.latents import fit

    rng = np.random.default_rng(0)
    scale = rng.uniform(0.5, 4.0, 40_000)
    residual = rng.laplace(0.0, 1.0, scale.size) * scale * 1.3
    fits = fit({"residual": residual, "scale": scale, "own_bpe": 0.0})
    assert fits["laplacian"]["bpe"] < fits["gaussian"]["bpe"]
    assert fits["ggm"]["bpe"] <= fits["laplacian"]["bpe"] + 1e-6
    assert abs(fits["ggm"]["beta"] - 1.0) < 0.1 and abs(fits["laplacian"]["c"] - 1.3) < 0.05


def test_bitstream_map_is_checked_before_it_costs_memory():
    """A zlib map body inflates only to the map's size (a 40 KB body of 40 MB of zeros is
    refused without inflating it), and a quality code above Q_STEPS is refused."""
    import tracemalloc
    import zlib

    from bench.varint import decode_varint, encode_varint

    h, w = latent_size(70, 90)
    codes = np.array([0, 30, 100], np.uint8)[np.random.default_rng(1).integers(0, 3, (h, w))]
    data = pack(Payload("gaussian", 70, 90, codes, stream=b"ss\x00sss\x01"))
    pos = 1
    for _ in range(2):  # height, width
        _, pos = decode_varint(data, pos)
    pos += 1 + data[pos]  # level count and levels: the map body's method byte is next
    _, body_at = decode_varint(data, pos + 1)
    bomb = zlib.compress(bytes(40 << 20), 9)
    forged = data[:pos] + bytes([1]) + encode_varint(len(bomb)) + bomb + b"ss"
    tracemalloc.start()
    with pytest.raises(BitstreamError, match="quality map"):
        unpack(forged)
    assert tracemalloc.get_traced_memory()[1] < 4 << 20
    tracemalloc.stop()
    assert body_at > pos  # the layout read above is the packer's
    uniform = bytearray(pack(Payload("gaussian", 70, 90, np.full((h, w), 40, np.uint8),
                                     stream=b"ss")))
    uniform[3] = 184  # the uniform code (byte 0, H, W, code)
    with pytest.raises(BitstreamError, match="above 100"):
        unpack(bytes(uniform))
