"""``bench codecs``: every installed codec, its quality grid, and whether it runs here.

With --verify, each matching codec that runs here is also checked against the codec contract
on generated pictures (round trip at odd sizes, grid ordered by rate, same bytes twice, the
ROI never in a bitstream for free, decoding in a fresh process from the bytes alone: see
bench/codecs/conformance.py), so a codec of your own can be checked before it goes into a
benchmark:

  bench codecs mycodec --verify

Exit status: 0 when every check of every verified codec passed, 1 when one failed or no
matching codec could run here, 2 for a usage error.
"""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("codecs", help="list the installed codecs and whether they run here "
                       "(--verify: check them against the codec contract)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pattern", nargs="?", default="*", help="shell-style name filter")
    p.add_argument("--verify", action="store_true",
                   help="also check each matching codec that runs here against the codec "
                   "contract on generated pictures (a few seconds per codec); exit 1 if a "
                   "check fails")
    add_vtm_dir(p)
    p.set_defaults(func=main)


#: The ``vtm`` codec's presets (``bench.codecs.vtm.PRESETS``; not imported here, so that the
#: command line starts without numpy).
VTM_PRESETS = ("vcm", "limited10")


def add_vtm_dir(p) -> None:
    """``--vtm-dir`` (where the ``vtm`` codec finds VTM) and ``--vtm-preset`` (``bench run``
    and ``bench codecs``)."""
    p.add_argument("--vtm-dir", default=None, metavar="DIR",
                   help="folder of VTM's EncoderApp/DecoderApp for the vtm codec (sets "
                   "$BENCH_VTM_DIR for this command; its cfg/ is found in a parent folder)")
    p.add_argument("--vtm-preset", default=None, choices=VTM_PRESETS,
                   help="vtm codec preset: vcm (default: the MPEG VCM anchor scripts' "
                   "procedure, 8-bit full-range input) or limited10 (10-bit limited range, "
                   "the input the vvc codec gets); a non-default preset is labelled "
                   "vtm@preset-NAME")


def vtm_options(args: argparse.Namespace, name: str) -> dict[str, str]:
    """Constructor options ``--vtm-preset`` gives codec ``name`` (none unless it is vtm)."""
    if name != "vtm" or getattr(args, "vtm_preset", None) is None:
        return {}
    return {"preset": args.vtm_preset}


def apply_vtm_dir(args: argparse.Namespace) -> str | None:
    """Export ``--vtm-dir`` as ``$BENCH_VTM_DIR`` (workers inherit it); an error if not a
    folder."""
    import os

    if args.vtm_dir is None:
        return None
    if not os.path.isdir(args.vtm_dir):
        return f"--vtm-dir {args.vtm_dir}: not a folder (pass the folder of EncoderApp)"
    os.environ["BENCH_VTM_DIR"] = os.path.abspath(args.vtm_dir)
    return None


def main(args: argparse.Namespace) -> int:
    import sys

    from bench.registry import CODECS

    problem = apply_vtm_dir(args)
    if problem:
        print(f"bench codecs: {problem}", file=sys.stderr)
        return 2

    names = CODECS.names(args.pattern)
    if args.verify:
        return _verify(names, args)
    for name in names:
        try:
            codec = CODECS.create(name, **vtm_options(args, name))
            reason = codec.availability()
            status = "available" if reason is None else f"unavailable: {reason}"
            version = codec.version() if reason is None else "-"
            grid = ", ".join(codec.qualities)
            own = ", ".join(getattr(codec, "roi_methods", ()))
            roi = (" (ROI-aware)" if codec.uses_roi
                   else f" (ROI through its encoder: --roi-method {own})" if own else "")
        except Exception as exc:  # a broken plugin is reported, not fatal to the listing
            status, version, grid, roi = f"unavailable: {type(exc).__name__}: {exc}", "-", "-", ""
        print(f"{name}{roi}: {status}")
        print(f"    grid (low → high rate): {grid}")
        print(f"    version: {version}")
    return 0


def _verify(names: list[str], args: argparse.Namespace) -> int:
    """``--verify``: the contract's checks on each codec of ``names`` that runs here."""
    import sys

    from bench.codecs.conformance import Subject, verify
    from bench.registry import CODECS

    if not names:
        print(f"bench codecs: no installed codec matches {args.pattern!r}; `bench codecs` "
              "lists them", file=sys.stderr)
        return 1
    verified, failed, unavailable = [], [], []
    for name in names:
        try:
            subject = Subject(CODECS.get(name), vtm_options(args, name), registered=name)
            reason = subject.codec.availability()
        except Exception as exc:  # a broken plugin is a failed codec, not a crash
            print(f"{name}: FAIL: could not be made: {type(exc).__name__}: {exc}")
            failed.append(name)
            continue
        if reason is not None:
            print(f"{name}: not verified: unavailable here: {reason}")
            unavailable.append(name)
            continue
        print(f"{name}:", flush=True)
        findings = verify(subject, report=lambda f: print(
            f"  {'ok  ' if f.ok else 'FAIL'}  {f.check}: {f.detail}", flush=True))
        (verified if all(f.ok for f in findings) else failed).append(name)
    parts = [f"{len(verified)} passed", f"{len(failed)} failed"]
    if unavailable:
        parts.append(f"{len(unavailable)} not verified (unavailable here: "
                     f"{', '.join(unavailable)})")
    print("verify: " + ", ".join(parts) + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed or not verified else 0
