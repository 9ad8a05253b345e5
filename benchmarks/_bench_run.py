"""The ``bench run`` the executor benchmarks time: its options and the timed command."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from _timing import timed_command

SHARED = Path(__file__).resolve().parents[2] / "shared"


def add_run_arguments(ap: argparse.ArgumentParser, limit: int) -> None:
    """``--limit`` (default ``limit``), ``--data-root`` and ``--model`` (the shared int8
    YOLOv8n detector unless given)."""
    ap.add_argument("--limit", type=int, default=limit)
    ap.add_argument("--data-root", default=os.environ.get("BENCH_DATA_ROOT")
                    or str(SHARED / "data" / "coco"))
    ap.add_argument("--model", default=str(Path(os.environ.get("BENCH_MODELS_DIR")
                                                or SHARED / "models")
                                           / "yolov8n_integer_quant.tflite"))


def run_command(args: argparse.Namespace, codecs: list[str],
                qualities: list[str]) -> list[str]:
    """``bench run`` of ``codecs`` (at ``qualities``, or whole grids when empty) on
    ``args.limit`` images with detection and PSNR, without a run directory or executor."""
    cmd = [sys.executable, "-m", "bench", "run", "--no-progress", "--limit", str(args.limit),
           "--metrics", "psnr", "--task", "detection", "--model", args.model,
           "--data-root", args.data_root]
    for codec in codecs:
        cmd += ["--codec", codec]
    for quality in qualities:
        cmd += ["--quality", quality]
    return cmd


def timed_run(cmd: list[str], executor: list[str], run_dir: Path) -> float:
    """Seconds ``cmd`` takes with the ``executor`` options into ``run_dir``."""
    return timed_command([*cmd, *executor, "--run-dir", str(run_dir)], dict(os.environ))
