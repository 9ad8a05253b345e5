"""Wall time of one run under each executor: local with 1 and 2 workers, and Ray.

The same ``bench run`` (default: 24 shared val2017 images, jpeg and vvc over their whole
grids, detection with the shared int8 YOLOv8n) is run from scratch into a fresh run
directory with ``--executor local --jobs 1``, ``--executor local --jobs 2`` and
``--executor ray --jobs 2`` (a local Ray instance of 2 CPUs, its start and shutdown
included), each as its own process. Prints each wall time, checks that the three stores hold
the same bitstream digests, and ends with ``ray_overhead <x>``: Ray's wall time over local
with 2 workers (target: at most 1.15 on this 2-core machine).

Run: ``python benchmarks/executor_scaling.py [--limit 24] [--codecs jpeg,vvc] [--quality Q]``.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
from pathlib import Path

from _bench_run import add_run_arguments, run_command, timed_run


def digests(run_dir: Path) -> list[tuple]:
    db = sqlite3.connect(run_dir / "results.sqlite")
    try:
        return sorted(db.execute("SELECT codec, quality, image_id, sha256 FROM results"))
    finally:
        db.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(ap, limit=24)
    ap.add_argument("--codecs", default="jpeg,vvc")
    ap.add_argument("--quality", action="append", default=None,
                    help="quality points to run (repeatable; default: whole grids)")
    args = ap.parse_args()
    base = run_command(args, args.codecs.split(","), args.quality or [])
    setups = {
        "local --jobs 1": ["--executor", "local", "--jobs", "1"],
        "local --jobs 2": ["--executor", "local", "--jobs", "2"],
        "ray (2 CPUs)": ["--executor", "ray", "--jobs", "2"],
    }
    print(f"{args.limit} images, codecs {args.codecs}, detection; each run from scratch")
    seconds, stores = {}, {}
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
        for name, extra in setups.items():
            run_dir = Path(tmp) / name.split()[0] / extra[-1]
            seconds[name] = timed_run(base, extra, run_dir)
            stores[name] = digests(run_dir)
            print(f"{name:>16}: {seconds[name]:8.1f} s")
    same = all(s == stores["local --jobs 1"] for s in stores.values())
    print(f"identical bitstreams in all three stores: {same}")
    print(f"ray_overhead {seconds['ray (2 CPUs)'] / seconds['local --jobs 2']:.3f}")


if __name__ == "__main__":
    main()
