"""The codec contract's checks (`bench codecs --verify`): an honest small codec passes all of
them, and each way of breaking the contract fails exactly the check made for it. The
registry's codecs are held to the same checks in tests/test_codecs.py."""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np
import pytest

from bench.cli import main
from bench.codecs.base import Codec
from bench.codecs.conformance import CHECK_NAMES, Subject, verify


class Levels(Codec):
    """An honest small codec: each value kept to its top ``bits`` bits, zlib-compressed, the
    shape in a header and a trailer for extra bytes (empty here)."""

    name = "levels"
    qualities = ("b2", "b4", "b6")

    def version(self) -> str:
        return "levels-1"

    def bits(self, quality: str) -> int:
        return int(self.check_quality(quality)[1:])

    def extra(self, roi) -> bytes:
        return b""

    def encode(self, image, roi, quality):
        bits = self.bits(quality)
        payload = zlib.compress((image >> (8 - bits)).tobytes(), 9)
        extra = self.extra(roi)
        return (struct.pack(">HHBI", *image.shape[:2], bits, len(payload)) + payload + extra)

    def decode(self, data):
        h, w, bits, n = struct.unpack(">HHBI", data[:9])
        values = np.frombuffer(zlib.decompress(data[9:9 + n]), np.uint8).reshape(h, w, 3)
        shift = 8 - bits
        return ((values.astype(np.uint16) << shift) + ((1 << shift) >> 1)).astype(np.uint8)


class RoiLevels(Levels):
    """ROI-aware and honest: 6 bits inside the ROI, 2 outside, the mask in the bitstream."""

    uses_roi = True

    def encode(self, image, roi, quality):
        if roi is None:
            return b"\x00" + super().encode(image, roi, quality)
        inside = super().encode(image, roi, "b6")
        outside = super().encode(image, roi, "b2")
        mask = zlib.compress(np.packbits(roi).tobytes())
        return b"\x01" + struct.pack(">III", len(inside), len(outside), len(mask)) + (
            inside + outside + mask)

    def decode(self, data):
        if data[0] == 0:
            return super().decode(data[1:])
        n_in, n_out, n_mask = struct.unpack(">III", data[1:13])
        inside = super().decode(data[13:13 + n_in])
        outside = super().decode(data[13 + n_in:13 + n_in + n_out])
        h, w = inside.shape[:2]
        bits = np.frombuffer(zlib.decompress(data[13 + n_in + n_out:]), np.uint8)
        roi = np.unpackbits(bits)[:h * w].reshape(h, w).astype(bool)
        return np.where(roi[..., None], inside, outside)


class KeepsThePicture(Levels):
    """Decodes from what the encoding object remembers, not from the bytes."""

    def __init__(self):
        self.seen: dict[bytes, np.ndarray] = {}

    def encode(self, image, roi, quality):
        data = super().encode(image, roi, quality)
        self.seen[data] = image.copy()
        return data

    def decode(self, data):
        return self.seen[data] if data in self.seen else super().decode(data)


class RoiForFree(Levels):
    """Says it ignores the ROI, yet writes the mask into its bitstream."""

    def extra(self, roi) -> bytes:
        return b"" if roi is None else np.packbits(roi).tobytes()


class Unseeded(Levels):
    """Different bytes every time."""

    def extra(self, roi) -> bytes:
        return os.urandom(4)


class OneQuality(Levels):
    """Every grid point codes the same."""

    def bits(self, quality: str) -> int:
        super().bits(quality)
        return 6


class AnyQuality(Levels):
    """Takes a quality off its grid."""

    def bits(self, quality: str) -> int:
        return int(quality[1:]) if quality in self.qualities else 6


class NoSinglePixel(Levels):
    """Cannot decode a 1×1 picture."""

    def decode(self, data):
        out = super().decode(data)
        if out.shape[:2] == (1, 1):
            raise RuntimeError("too small")
        return out


class WillNotLoad(Levels):
    def load(self) -> None:
        raise RuntimeError("weights missing")


def failed(cls: type) -> set[str]:
    return {f.check for f in verify(Subject(cls)) if not f.ok}


def test_an_honest_codec_passes_every_check():
    findings = verify(Subject(Levels, registered="levels"))
    assert [f.check for f in findings] == list(CHECK_NAMES)
    assert all(f.ok for f in findings), [f for f in findings if not f.ok]
    detail = {f.check: f.detail for f in findings}
    assert "b2" in detail["rate-order"] and "ignores the ROI" in detail["roi"]


def test_an_honest_roi_codec_passes_every_check():
    findings = verify(Subject(RoiLevels))
    assert all(f.ok for f in findings), [f for f in findings if not f.ok]
    assert "ROI-aware" in {f.check: f.detail for f in findings}["roi"]


@pytest.mark.parametrize("cls, check, says", [
    (KeepsThePicture, "fresh-process", "values differ"),
    (RoiForFree, "roi", "set uses_roi = True"),
    (OneQuality, "rate-order", "low to high rate"),
    (AnyQuality, "unknown-quality", "accepted quality 'no-such-quality'"),
    (NoSinglePixel, "round-trip", "raised RuntimeError: too small"),
])
def test_each_broken_promise_fails_its_check(cls, check, says):
    findings = {f.check: f for f in verify(Subject(cls))}
    assert {c for c, f in findings.items() if not f.ok} == {check}
    assert says in findings[check].detail


def test_random_bytes_fail_determinism_and_leave_the_roi_untold():
    findings = {f.check: f for f in verify(Subject(Unseeded))}
    assert {c for c, f in findings.items() if not f.ok} == {"deterministic", "roi"}
    assert "not the same" in findings["deterministic"].detail
    assert findings["roi"].detail.startswith("cannot be told")


def test_a_wrong_name_and_a_failed_load_are_reported():
    grid = {f.check: f for f in verify(Subject(Levels, registered="other"))}["grid"]
    assert not grid.ok and "registered as 'other' but its name is 'levels'" in grid.detail
    findings = verify(Subject(WillNotLoad))
    assert [(f.check, f.ok) for f in findings] == [("load", False)]
    assert "weights missing" in findings[0].detail


def test_verify_command_on_an_installed_codec(capsys):
    assert main(["codecs", "jpeg", "--verify"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("jpeg:\n") and out.count("  ok    ") == len(CHECK_NAMES)
    assert "verify: 1 passed, 0 failed" in out
    assert main(["codecs", "no-such-codec*", "--verify"]) == 1
    assert "no installed codec matches 'no-such-codec*'" in capsys.readouterr().err
