"""The ``bench`` command line: one module per command, heavy imports inside each command."""

from __future__ import annotations

import argparse
import importlib
import sys

from bench import __version__

#: One module per command, each with ``register(subparsers)``; listed here once.
COMMANDS = (
    "run_cmd", "codecs_cmd", "data_cmd", "report_cmd", "check_cmd", "train_cmd", "analyze_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every command's sub-parser."""
    parser = argparse.ArgumentParser(
        prog="bench",
        description="Benchmark region-of-interest image codecs on COCO: real bitstreams, "
        "image metrics, machine-vision task scores.",
        epilog="Run `bench COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"bench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"bench.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bench`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # the command line as given, for commands that record it as provenance
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("\ninterrupted: every finished row is stored; run the same command again to "
              "continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
