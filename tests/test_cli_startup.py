"""`bench --help`, `--version` and every command's parser import no heavy library.

Every ``bench`` call builds the parser of every command, so an import at parser-building
time is paid by each call: pandas and scipy through ``bench.report`` made `bench --help`
take 1.2–3.2 s. Each case runs in a fresh interpreter and lists what it imported; the
speed itself is measured by ``benchmarks/cli_startup.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: Top-level packages that building the parser must not import (each costs 0.1–3 s).
HEAVY = ("numpy", "pandas", "scipy", "torch", "PIL", "matplotlib", "cv2", "ultralytics",
         "compressai", "pycocotools", "tqdm", "onnxruntime")

PROBE = """
import json, sys
from bench.cli import main
try:
    main(json.loads(sys.argv[1]))
except SystemExit:
    pass
heavy = json.loads(sys.argv[2])
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & set(heavy))))
"""


def imported_heavy(argv: list[str]) -> list[str]:
    """The heavy packages a fresh ``bench ARGV`` imports (its own output is discarded)."""
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv), json.dumps(HEAVY)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def command_names() -> list[str]:
    """Every command the parser offers, read from the parser itself."""
    from bench.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a.choices, dict))
    return sorted(sub.choices)


@pytest.mark.parametrize("argv", [["--help"], ["--version"]])
def test_top_level_imports_nothing_heavy(argv):
    assert imported_heavy(argv) == []


def test_every_command_help_but_report_imports_nothing_heavy():
    """`bench report --help` is the exception: it prints choices defined in bench.report."""
    names = command_names()
    assert {"run", "report", "check", "codecs"} <= set(names)
    found = {name: imported_heavy([name, "--help"]) for name in names if name != "report"}
    assert found == {name: [] for name in found}


def test_report_choices_are_the_library_constants():
    """The lazily read choices of `bench report` accept and reject as the library defines."""
    from bench.cli import build_parser
    from bench.report.bd import METHODS, POLICIES
    from bench.report.plots import STYLES
    from bench.report.points import IMAGE_MODES, METRICS, RATES
    from bench.report.tables import FORMATS
    from bench.tasks.cocoeval import EVALUATORS

    parser = build_parser()
    args = parser.parse_args(["report", "--metric", "seg-ap", "--metric", "psnr", "--method",
                              METHODS[-1], "--rate", "mean", "--images", IMAGE_MODES[-1],
                              "--non-monotonic", POLICIES[-1], "--format", FORMATS[-1]])
    assert (args.metric, args.method, args.rate, args.images, args.non_monotonic,
            args.format) == (["seg-ap", "psnr"], METHODS[-1], "mean", IMAGE_MODES[-1],
                             POLICIES[-1], FORMATS[-1])
    report = next(a for a in parser._actions if isinstance(a.choices, dict)).choices["report"]
    choices = {a.dest: tuple(a.choices) for a in report._actions if a.choices is not None}
    assert choices == {"metric": tuple(METRICS), "method": METHODS, "rate": tuple(RATES),
                       "images": IMAGE_MODES, "non_monotonic": POLICIES, "format": FORMATS,
                       "plot_style": STYLES, "coco_eval": EVALUATORS}
    with pytest.raises(SystemExit):
        parser.parse_args(["report", "--metric", "bogus"])
