"""Process-pool speed-up: `bench run --codec vvc --jobs 2` vs `--jobs 1`, side by side.

Both runs code the same images at the same qualities into fresh run directories, as fresh
processes, interleaved over repeats; the medians are compared. VVC encoding is CPU-bound
and single-threaded per image, so on a machine with two free cores the ratio approaches 2.
Run it on an otherwise idle machine: another busy process halves what --jobs 2 can gain.

Last line: ``speedup <jobs1 time / jobs2 time>`` (target ≥ 1.7).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from _timing import timed_command


def main() -> None:
    repo = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=os.environ.get("BENCH_DATA_ROOT")
                    or str(repo.parent / "shared/data/coco"))
    ap.add_argument("--codec", default="vvc")
    ap.add_argument("--limit", type=int, default=8, help="images (default 8)")
    ap.add_argument("--quality", action="append", default=None,
                    help="qualities to code (default: qp37 and qp27)")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    qualities = args.quality or ["qp37", "qp27"]
    env = dict(os.environ, BENCH_PROGRESS="0")
    times: dict[int, list[float]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            for jobs in (1, 2):
                cmd = [sys.executable, "-m", "bench", "run", "--codec", args.codec,
                       "--limit", str(args.limit), "--metrics", "psnr", "--jobs", str(jobs),
                       "--data-root", args.data_root, "--run-dir", f"{tmp}/j{jobs}-{i}",
                       "--no-progress"]
                for q in qualities:
                    cmd += ["--quality", q]
                times[jobs].append(timed_command(cmd, env))
            print(f"repeat {i}: jobs 1 {times[1][-1]:.2f} s, jobs 2 {times[2][-1]:.2f} s",
                  flush=True)
    one, two = statistics.median(times[1]), statistics.median(times[2])
    print(f"codec {args.codec}, {args.limit} images × {len(qualities)} qualities, "
          f"cores {os.cpu_count()}: median jobs 1 {one:.2f} s, jobs 2 {two:.2f} s")
    print(f"speedup {one / two:.3f}")


if __name__ == "__main__":
    main()
