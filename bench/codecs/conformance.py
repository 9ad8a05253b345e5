"""What every codec promises (:class:`bench.codecs.base.Codec`), checked on generated pictures.

``bench codecs NAME --verify`` runs these checks on an installed codec, a third-party plugin
included, before it goes into a benchmark; the project's registry tests
(``tests/test_codecs.py``) run the same checks on every codec it ships. Each check gives a
:class:`Finding`; a failed one says what the codec did and what the contract asks for.

The checks (:data:`CHECKS`, in this order):

* ``grid``: a name (the one it is registered under), a non-empty grid of distinct quality
  names, a non-empty version string;
* ``unknown-quality``: encoding at a quality off the grid raises ``ValueError`` naming the
  grid;
* ``round-trip``: pictures of 1×1, 3×5, 31×17 and 64×96 come back from their bytes alone as
  H×W×3 uint8 of their own shape;
* ``top-quality``: the top grid point gives more than :data:`TOP_PSNR_DB` on a 64×96 picture;
* ``rate-order``: the bytes do not decrease along the grid (low → high rate), and the top
  point costs more than the bottom one;
* ``deterministic``: the same picture, ROI and quality give the same bytes twice;
* ``roi``: a codec that does not spend bits by the ROI (``uses_roi`` False) gives the same
  bytes with and without one, so the mask never reaches its bitstream for free; a ROI-aware
  codec decodes a ROI-coded picture to its shape;
* ``fresh-process``: a new Python process that gets only the bytes (and the codec's class
  and constructor options) decodes them to the same pixels, so no state left in the encoding
  object helps the decoder.

Every picture goes in through :meth:`~bench.codecs.base.Codec.encode_source` with a JPEG
(quality 100) of it as the source file and the decoded JPEG as the picture, as ``bench run``
feeds a COCO file, so the ``original`` codec (which passes its source through) is held to
the same checks.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: The lowest PSNR the top grid point may give on the 64×96 generated picture.
TOP_PSNR_DB = 28.0
#: Sizes (height, width) of the round-trip pictures: a single pixel, odd and even sizes.
ROUND_TRIP_SHAPES = ((1, 1), (3, 5), (31, 17), (64, 96))
#: Seconds a fresh process may take to start, load the codec and decode one picture.
FRESH_PROCESS_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Finding:
    """The outcome of one check: its name, whether the codec passed, and what was seen."""

    check: str
    ok: bool
    detail: str


def natural_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth, textured RGB picture (codecs behave on it as on photos), H×W×3 uint8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    base = np.stack([
        128 + 80 * np.sin(x / 9.0 + seed) * np.cos(y / 13.0),
        128 + 60 * np.cos((x + y) / 17.0),
        128 + 70 * np.sin(y / 7.0 - seed),
    ], axis=2)
    return np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)


class Subject:
    """A codec under test: its class and constructor options, so that a fresh process can
    make the same codec, and the name it is registered under (if any); ``codec`` is the
    instance the in-process checks use."""

    def __init__(self, cls: type, options: dict | None = None, registered: str | None = None):
        self.cls, self.options, self.registered = cls, dict(options or {}), registered
        self.codec = cls(**self.options)
        self._sources: dict[tuple[int, int, int], tuple[np.ndarray, bytes]] = {}

    @property
    def path(self) -> str:
        """``module:qualname`` of the class, importable by another process."""
        return f"{self.cls.__module__}:{self.cls.__qualname__}"

    def picture(self, h: int, w: int, seed: int = 0) -> tuple[np.ndarray, bytes]:
        """A generated picture as ``bench run`` would feed it: (decoded pixels, JPEG file)."""
        key = (h, w, seed)
        if key not in self._sources:
            from PIL import Image

            from bench.data.images import decode_rgb

            buf = io.BytesIO()
            Image.fromarray(natural_image(h, w, seed)).save(buf, format="JPEG", quality=100)
            source = buf.getvalue()
            self._sources[key] = (decode_rgb(source), source)
        return self._sources[key]

    def encode(self, h: int, w: int, quality: str, roi: np.ndarray | None = None,
               seed: int = 0) -> tuple[np.ndarray, bytes]:
        """(the picture, its bytes at ``quality``)."""
        image, source = self.picture(h, w, seed)
        return image, self.codec.encode_source(image, roi, quality, source)


def _top(s: Subject) -> str:
    return s.codec.qualities[-1]


def check_grid(s: Subject) -> Finding:
    """The ``grid`` check: name, quality grid and version string."""
    c = s.codec
    q = c.qualities
    problems = []
    if not isinstance(c.name, str) or not c.name:
        problems.append("the class sets no name")
    elif s.registered is not None and c.name != s.registered:
        problems.append(f"registered as {s.registered!r} but its name is {c.name!r}")
    if not q or not all(isinstance(x, str) and x for x in q):
        problems.append(f"qualities must be a non-empty tuple of names, got {q!r}")
    elif len(set(q)) != len(q):
        problems.append(f"quality names repeat: {', '.join(q)}")
    version = c.version()
    if not isinstance(version, str) or not version:
        problems.append(f"version() must return a non-empty string, got {version!r}")
    if problems:
        return Finding("grid", False, "; ".join(problems))
    short = version if len(version) <= 60 else version[:57] + "..."
    return Finding("grid", True, f"{len(q)} qualities ({q[0]} … {q[-1]}); version {short}")


def check_unknown_quality(s: Subject) -> Finding:
    """The ``unknown-quality`` check: a quality off the grid is refused by name."""
    name = "unknown-quality"
    try:
        s.encode(8, 8, "no-such-quality")
    except ValueError as exc:
        if s.codec.qualities and s.codec.qualities[0] in str(exc):
            return Finding(name, True, "ValueError naming the grid")
        return Finding(name, False, f"ValueError without the grid's names: {exc} (call "
                       "self.check_quality(quality) first in encode)")
    return Finding(name, False, "encode accepted quality 'no-such-quality'; it should raise "
                   "ValueError naming the grid (self.check_quality(quality))")


def check_round_trip(s: Subject) -> Finding:
    """The ``round-trip`` check: every size in :data:`ROUND_TRIP_SHAPES` comes back whole."""
    quality = _top(s)
    for h, w in ROUND_TRIP_SHAPES:
        image, data = s.encode(h, w, quality, seed=3)
        if not isinstance(data, bytes) or not data:
            return Finding("round-trip", False, f"{h}×{w} at {quality}: encode returned "
                           f"{type(data).__name__} of length {len(data or b'')}, not bytes")
        out = s.codec.decode(data)
        if not isinstance(out, np.ndarray) or out.dtype != np.uint8 or out.shape != image.shape:
            got = (f"{out.dtype} {out.shape}" if isinstance(out, np.ndarray)
                   else type(out).__name__)
            return Finding("round-trip", False, f"{h}×{w} at {quality}: decode gave {got}, "
                           f"expected uint8 {image.shape}")
    sizes = ", ".join(f"{h}×{w}" for h, w in ROUND_TRIP_SHAPES)
    return Finding("round-trip", True, f"{sizes} at {quality}: shape and uint8 kept")


def check_top_quality(s: Subject) -> Finding:
    """The ``top-quality`` check: the top point above :data:`TOP_PSNR_DB`."""
    from bench.metrics import psnr

    quality = _top(s)
    image, data = s.encode(64, 96, quality, seed=3)
    value = psnr(image, s.codec.decode(data))
    text = f"{quality}: {value:.2f} dB on 64×96"
    if value > TOP_PSNR_DB:
        return Finding("top-quality", True, text)
    return Finding("top-quality", False, f"{text}; the top grid point should come close to "
                   f"the input (more than {TOP_PSNR_DB:g} dB)")


def check_rate_order(s: Subject) -> Finding:
    """The ``rate-order`` check: bytes grow along the grid."""
    sizes = [len(s.encode(96, 128, q, seed=5)[1]) for q in s.codec.qualities]
    listed = ", ".join(f"{q} {n}" for q, n in zip(s.codec.qualities, sizes, strict=True))
    if sizes == sorted(sizes) and (len(sizes) == 1 or sizes[0] < sizes[-1]):
        return Finding("rate-order", True, f"bytes on 96×128: {listed}")
    return Finding("rate-order", False, f"bytes on 96×128: {listed}; the grid must run from "
                   "low to high rate")


def _roi(h: int, w: int) -> np.ndarray:
    roi = np.zeros((h, w), bool)
    roi[h // 4: h // 2 + h // 4, w // 3: w - w // 4] = True
    return roi


def check_deterministic(s: Subject) -> Finding:
    """The ``deterministic`` check: the same input gives the same bytes."""
    quality = s.codec.qualities[len(s.codec.qualities) // 2]
    roi = _roi(64, 96)
    first = s.encode(64, 96, quality, roi)[1]
    second = s.encode(64, 96, quality, roi)[1]
    if first == second:
        return Finding("deterministic", True, f"{quality}: the same {len(first)} bytes twice")
    return Finding("deterministic", False, f"{quality}: {len(first)} then {len(second)} "
                   "bytes, not the same; a result must be reproducible (seed any randomness)")


def check_roi(s: Subject) -> Finding:
    """The ``roi`` check: no ROI in a non-ROI codec's bytes; a ROI-coded picture decodes."""
    quality = s.codec.qualities[len(s.codec.qualities) // 2]
    roi = _roi(64, 96)
    image, with_roi = s.encode(64, 96, quality, roi)
    if s.codec.uses_roi:
        out = s.codec.decode(with_roi)
        if out.shape != image.shape:
            return Finding("roi", False, f"{quality} with a ROI: decode gave {out.shape}, "
                           f"expected {image.shape}")
        without = s.encode(64, 96, quality)[1]
        return Finding("roi", True, f"ROI-aware; {quality}: {len(with_roi)} bytes with a ROI, "
                       f"{len(without)} without")
    without = s.encode(64, 96, quality)[1]
    if without != s.encode(64, 96, quality)[1]:
        return Finding("roi", False, "cannot be told: two codings without a ROI already give "
                       "different bytes (see deterministic)")
    if with_roi == without:
        return Finding("roi", True, f"ignores the ROI: the same {len(without)} bytes with "
                       "and without one")
    return Finding("roi", False, f"uses_roi is False, yet {quality} gives {len(with_roi)} "
                   f"bytes with a ROI and {len(without)} without: set uses_roi = True if the "
                   "codec spends bits by the ROI (and count the mask in the bitstream)")


def check_fresh_process(s: Subject) -> Finding:
    """The ``fresh-process`` check: another process decodes the same pixels."""
    from bench import external

    quality = _top(s)
    image, data = s.encode(64, 96, quality, _roi(64, 96) if s.codec.uses_roi else None)
    here = s.codec.decode(data)
    with external.work_dir("conformance") as tmp:
        (tmp / "in.bin").write_bytes(data)
        argv = [sys.executable, "-m", "bench.codecs.conformance", "--decode", s.path,
                "--options", json.dumps(s.options), "--input", tmp / "in.bin",
                "--output", tmp / "out.npy"]
        try:
            external.run(argv, timeout=FRESH_PROCESS_TIMEOUT_S, cwd=Path.cwd())
        except external.ProgramError as exc:
            return Finding("fresh-process", False, f"a new process could not decode the "
                           f"bytes: {exc}")
        there = np.load(tmp / "out.npy", allow_pickle=False)
    if there.shape == here.shape and np.array_equal(there, here):
        return Finding("fresh-process", True, f"{quality}: a new process decodes the same "
                       f"{here.shape[0]}×{here.shape[1]} pixels from the bytes alone")
    diff = (f"{int(np.count_nonzero(there != here))} of {here.size} values differ"
            if there.shape == here.shape else f"shape {there.shape} against {here.shape}")
    return Finding("fresh-process", False, f"{quality}: a new process decodes other pixels "
                   f"({diff}); the bytes must hold all the decoder needs, and decoding must "
                   "be exact across processes")


#: (name, check) in the order they run; each takes a :class:`Subject`.
CHECKS: tuple[tuple[str, Callable[[Subject], Finding]], ...] = (
    ("grid", check_grid),
    ("unknown-quality", check_unknown_quality),
    ("round-trip", check_round_trip),
    ("top-quality", check_top_quality),
    ("rate-order", check_rate_order),
    ("deterministic", check_deterministic),
    ("roi", check_roi),
    ("fresh-process", check_fresh_process),
)
CHECK_NAMES = tuple(name for name, _ in CHECKS)


def run_check(subject: Subject, name: str) -> Finding:
    """One check by name; an exception the codec raises fails the check (it is reported,
    not raised)."""
    check = dict(CHECKS)[name]
    try:
        return check(subject)
    except Exception as exc:  # the codec under test failed; say how
        return Finding(name, False, f"raised {type(exc).__name__}: {exc}")


def verify(subject: Subject, report: Callable[[Finding], None] | None = None
           ) -> list[Finding]:
    """Every check on ``subject`` (an available codec); ``report`` gets each finding as it
    comes (the checks of a learned codec take seconds each). A codec that cannot load gives
    one failed ``load`` finding and no checks."""
    findings: list[Finding] = []

    def note(finding: Finding) -> None:
        findings.append(finding)
        if report is not None:
            report(finding)

    try:
        subject.codec.load()
    except Exception as exc:  # the codec under test failed; say how
        note(Finding("load", False, f"raised {type(exc).__name__}: {exc}"))
        return findings
    for name in CHECK_NAMES:
        note(run_check(subject, name))
    return findings


def _decode_main(argv: list[str] | None = None) -> int:
    """The fresh process of :func:`check_fresh_process`: make the codec from its class and
    options, decode a file of bytes, save the pixels as ``.npy``."""
    p = argparse.ArgumentParser(description="decode one bitstream in a fresh process")
    p.add_argument("--decode", required=True, metavar="MODULE:CLASS")
    p.add_argument("--options", default="{}")
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    args = p.parse_args(argv)
    module, _, qualname = args.decode.partition(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    codec = obj(**json.loads(args.options))
    codec.load()
    np.save(args.output, codec.decode(Path(args.input).read_bytes()), allow_pickle=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(_decode_main())
