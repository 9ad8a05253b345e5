"""Size and build time of `bench report --html` for a run directory.

Builds the HTML report of ``--run-dir`` (default ``runs/leaderboard``, the standard
79-image run) into a temporary folder ``--repeats`` times as a fresh ``bench report``
process each time, the way a person runs it (the first build may also score and cache task
results the run left unscored; later ones read the cache). Prints the size of the report by
part (page, vendored JavaScript, pictures, data), how many images and codecs it covers, and
each build's wall time.

Last lines: ``report_mb <size in MB>`` (target < 10 for 79 images and 10 codecs) and
``build_seconds <median>`` (target < 60).
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
from pathlib import Path

from _timing import timed_command

TARGET_MB = 10.0
TARGET_S = 60.0


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() \
        else (path.stat().st_size if path.is_file() else 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", default="runs/leaderboard")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=None, help="build here (default: a temporary folder)")
    ap.add_argument("report_args", nargs="*",
                    help="more `bench report` options, after --, e.g. -- --html-images 8")
    args = ap.parse_args()
    if not (Path(args.run_dir) / "results.sqlite").is_file():
        sys.exit(f"no results store in {args.run_dir}; pass --run-dir")
    env = dict(os.environ, BENCH_PROGRESS="0")
    with tempfile.TemporaryDirectory(prefix="bench-html-") as tmp:
        out = Path(args.out or Path(tmp) / "report")
        cmd = [sys.executable, "-m", "bench", "report", "--run-dir", args.run_dir, "--html",
               str(out), *args.report_args]
        times = [timed_command(cmd, env) for _ in range(args.repeats)]
        parts = {"index.html": out / "index.html", "assets (Vega, vendored)": out / "assets",
                 "img (gallery)": out / "img", "data (CSV)": out / "data"}
        sizes = {name: _size(p) for name, p in parts.items()}
        total = _size(out)
        with open(out / "data" / "points.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        codecs = sorted({r["codec"] for r in rows})
        images = max(int(r["images"]) for r in rows)
        pictures = sum(1 for p in (out / "img").rglob("*.webp")) if (out / "img").is_dir() else 0
    print(f"run {args.run_dir}: {images} images, {len(codecs)} codecs ({', '.join(codecs)}); "
          f"{pictures} gallery pictures")
    print(f"{'part':<28}{'MB':>8}")
    for name, size in sizes.items():
        print(f"{name:<28}{size / 1e6:>8.2f}")
    print(f"{'total':<28}{total / 1e6:>8.2f}")
    for i, t in enumerate(times, 1):
        print(f"build {i}: {t:.1f} s")
    print(f"targets: report < {TARGET_MB:g} MB, build < {TARGET_S:g} s")
    print(f"report_mb {total / 1e6:.2f}")
    print(f"build_seconds {statistics.median(times):.1f}")


if __name__ == "__main__":
    main()
