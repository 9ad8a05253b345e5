"""The SQLite results store: round trip of rows, NaN/inf, keys, and a broken database file."""

from __future__ import annotations

import math

import pytest

from bench.store import ImageResult, ResultsStore, StoreError


def test_rows_round_trip_with_nan_and_inf(tmp_path):
    with ResultsStore(tmp_path / "run") as store:
        row = ImageResult("jpeg", "v1", "q5", 7, file_name="a.jpg", width=4, height=2, bytes=10,
                          bpp=10.0, psnr=math.inf, roi_psnr=math.nan, bg_psnr=31.5,
                          notes="empty ROI", bitstream=b"\x00\x01")
        store.put(row)
        store.put(ImageResult("jpeg", "v1", "q9", 7, error="boom"))
        assert store.done("jpeg", "v1") == {("q5", 7), ("q9", 7)}
        assert store.done("jpeg", "v1", with_errors=False) == {("q5", 7)}
        assert store.done("jpeg", "v2") == set()
    with ResultsStore(tmp_path / "run") as store:  # reopened: the rows are durable
        (back,) = store.results("jpeg", "v1", ["q5"], [7], with_bitstreams=True)
        assert back.psnr == math.inf and math.isnan(back.roi_psnr) and back.bg_psnr == 31.5
        assert back.bitstream == b"\x00\x01" and back.ok
        assert store.bitstream("jpeg", "v1", "q5", 7) == b"\x00\x01"
        assert [r.error for r in store.results(qualities=["q9"])] == ["boom"]


def test_replacing_a_row_keeps_one(tmp_path):
    with ResultsStore(tmp_path) as store:
        store.put(ImageResult("c", "v", "q", 1, bytes=1))
        store.put(ImageResult("c", "v", "q", 1, bytes=2))
        assert [r.bytes for r in store.results()] == [2]


def test_not_a_database(tmp_path):
    (tmp_path / "results.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="results.sqlite.*--run-dir"):
        ResultsStore(tmp_path)
