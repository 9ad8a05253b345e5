"""Where an executor's wall time goes: the same small run under ``local --jobs 2`` and
``ray --jobs 2``, with the per-row encode and decode seconds and the per-prediction seconds
the workers recorded in each store, side by side.

Used to find why Ray was slower than the local pool (its workers ran at nice 15 and lost
the CPU to any other process). Default: 12 shared val2017 images, jpeg q10/q50 and vvc
qp27/qp37, detection with the shared int8 YOLOv8n.

Run: ``python benchmarks/executor_row_times.py [--limit 12]``.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
from pathlib import Path

from _bench_run import add_run_arguments, run_command, timed_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(ap, limit=12)
    args = ap.parse_args()
    base = run_command(args, ["jpeg", "vvc"], ["qp37", "qp27", "q50", "q10"])
    setups = {"local --jobs 2": ["--executor", "local", "--jobs", "2"],
              "ray --jobs 2": ["--executor", "ray", "--jobs", "2"]}
    print(f"{'executor':>15} {'wall s':>7} {'rows':>5} {'encode s':>9} {'decode s':>9} "
          f"{'predict s':>10}")
    with tempfile.TemporaryDirectory(prefix="bench-row-times-") as tmp:
        for name, extra in setups.items():
            run_dir = Path(tmp) / name.replace(" ", "_")
            wall = timed_run(base, extra, run_dir)
            db = sqlite3.connect(run_dir / "results.sqlite")
            try:
                enc, dec, rows = db.execute(
                    "SELECT SUM(encode_s), SUM(decode_s), COUNT(*) FROM results").fetchone()
                (pred,) = db.execute("SELECT SUM(predict_s) FROM predictions").fetchone()
            finally:
                db.close()
            print(f"{name:>15} {wall:7.1f} {rows:5d} {enc:9.1f} {dec:9.1f} {pred:10.1f}")


if __name__ == "__main__":
    main()
