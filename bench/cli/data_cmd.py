"""``bench data fetch coco``: download and unpack COCO into the data root."""

from __future__ import annotations

import argparse
import sys


def register(sub) -> None:
    p = sub.add_parser("data", help="manage data sets", description="Manage data sets.")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    f = dsub.add_parser(
        "fetch",
        help="download a data set into the data root",
        description="Download the official COCO archives (with resume and checksum "
        "verification) and unpack them into the data root in the official layout.",
    )
    f.add_argument("dataset", choices=["coco"], help="data set to fetch")
    f.add_argument("--split", default="val2017", help="COCO split (default: val2017)")
    f.add_argument("--data-root", default=None,
                   help="where to put it (default: $BENCH_DATA_ROOT, else ~/.cache/bench/coco)")
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    f.set_defaults(func=fetch)


def fetch(args: argparse.Namespace) -> int:
    from bench.data.coco import resolve_root
    from bench.data.fetch import FetchError, fetch_coco

    root = resolve_root(args.data_root)
    try:
        fetch_coco(root, args.split, progress=not args.no_progress)
    except (FetchError, ValueError) as exc:
        print(f"bench data fetch: error: {exc}", file=sys.stderr)
        return 2
    print(f"COCO {args.split} is ready in {root}")
    return 0
