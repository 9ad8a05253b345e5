"""``bench codecs``: every installed codec, its quality grid, and whether it runs here."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("codecs", help="list the installed codecs and whether they run here",
                       description=__doc__)
    p.add_argument("pattern", nargs="?", default="*", help="shell-style name filter")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from bench.registry import CODECS

    for name in CODECS.names(args.pattern):
        try:
            codec = CODECS.create(name)
            reason = codec.availability()
            status = "available" if reason is None else f"unavailable: {reason}"
            version = codec.version() if reason is None else "-"
            grid = ", ".join(codec.qualities)
            roi = " (ROI-aware)" if codec.uses_roi else ""
        except Exception as exc:  # a broken plugin is reported, not fatal to the listing
            status, version, grid, roi = f"unavailable: {type(exc).__name__}: {exc}", "-", "-", ""
        print(f"{name}{roi}: {status}")
        print(f"    grid (low → high rate): {grid}")
        print(f"    version: {version}")
    return 0
