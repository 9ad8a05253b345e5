"""CLI start-up: `bench --help` and `bench --version` beside a bare `python -c pass`.

Every side runs as a fresh process, interleaved, and the median wall time of each is
compared with that of the bare interpreter (which every `bench` call pays anyway). `python
-c "import pandas"` is shown as a yardstick: one heavy import at parser-building time costs
about that much, and pandas was what made `bench --help` take 1.2–3.2 s. The console script
itself (`bench`, found beside the interpreter) is timed when it is installed there.

Last lines: ``help_seconds <median>`` (target ≤ 0.3) and ``help_ratio <bench --help /
python -c pass>``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

from _timing import timed_command

TARGET_S = 0.3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    env = dict(os.environ, BENCH_PROGRESS="0")
    py = sys.executable
    sides = {
        "python -c pass": [py, "-c", "pass"],
        "python -c 'import pandas'": [py, "-c", "import pandas"],
        "python -m bench --help": [py, "-m", "bench", "--help"],
        "python -m bench --version": [py, "-m", "bench", "--version"],
        "python -m bench run --help": [py, "-m", "bench", "run", "--help"],
    }
    script = Path(py).with_name("bench")
    if script.is_file():
        sides["bench --help (console script)"] = [str(script), "--help"]
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(args.repeats):
        for name, cmd in sides.items():
            times[name].append(timed_command(cmd, env))
    medians = {name: statistics.median(t) for name, t in times.items()}
    bare = medians["python -c pass"]
    print(f"{'command':<32}{'median s':>10}{'min s':>8}{'× python -c pass':>18}")
    for name, med in medians.items():
        print(f"{name:<32}{med:>10.3f}{min(times[name]):>8.3f}{med / bare:>18.2f}")
    help_s = medians["python -m bench --help"]
    print(f"repeats {args.repeats}; target: bench --help ≤ {TARGET_S} s")
    print(f"help_seconds {help_s:.3f}")
    print(f"help_ratio {help_s / bare:.2f}")


if __name__ == "__main__":
    main()
