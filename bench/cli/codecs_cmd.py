"""``bench codecs``: every installed codec, its quality grid, and whether it runs here."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("codecs", help="list the installed codecs and whether they run here",
                       description=__doc__)
    p.add_argument("pattern", nargs="?", default="*", help="shell-style name filter")
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

    for name in CODECS.names(args.pattern):
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
