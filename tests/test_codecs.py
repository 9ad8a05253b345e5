"""Every registered codec, tested through the registry: a new codec is tested for free.

Each codec is held to the codec contract's checks (:mod:`bench.codecs.conformance`, also
`bench codecs NAME --verify`): round trip on generated pictures (odd sizes and 1×1 included)
from the bytes alone, the top point close to the input, the grid ordered from low to high
rate, the same bytes twice, the ROI never in a bitstream for free, and decoding in a fresh
process.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.codecs.conformance import CHECK_NAMES, Subject, run_check
from bench.registry import CODECS, create_codec, list_codecs
from tests.conftest import jpeg_bytes, natural_image

_SUBJECTS: dict[str, Subject] = {}


def _subject(name: str) -> Subject:
    """One loaded codec per name and test process (a learned codec loads its weights once)."""
    if name not in _SUBJECTS:
        subject = Subject(CODECS.get(name), registered=name)
        reason = subject.codec.availability()
        if reason is not None:
            pytest.skip(f"{name} unavailable here: {reason}")
        subject.codec.load()
        _SUBJECTS[name] = subject
    return _SUBJECTS[name]


@pytest.mark.parametrize("check", CHECK_NAMES)
@pytest.mark.parametrize("name", list_codecs())
def test_codec_keeps_the_contract(name, check):
    finding = run_check(_subject(name), check)
    assert finding.ok, f"{name} {check}: {finding.detail}"


def test_original_passes_the_source_through():
    codec = create_codec("original")
    src = jpeg_bytes(natural_image(20, 30), 80)
    assert codec.encode_source(np.zeros((20, 30, 3), np.uint8), None, "source", src) == src
