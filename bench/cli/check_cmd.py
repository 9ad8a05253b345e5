"""``bench check``: the regression gate. Re-runs a small fixed subset and compares it with the
committed baseline (results/ci_baseline.json): exact bytes for deterministic codecs, ±0.01 dB
PSNR / ROI-PSNR / background PSNR, ±0.3 detection AP and AP50, the same quality grids and
model hash. On a regression it prints a table of what moved and exits 1; a codec it cannot
run here is reported as skipped. ``--update`` re-measures the subset and rewrites the
baseline, with the environment fingerprint (CPU model and ISA flags, versions of ultralytics,
ai-edge-litert, onnxruntime, opencv-python, numpy, torch). Where the fingerprint here differs
from the baseline's (or the baseline has none), AP and AP50 beyond tolerance are WARN, not
FAIL (the int8 detector's kernels depend on the CPU), and so are the bitstream digests of
the codecs whose bytes depend on the CPU's float kernels (the learned codecs, held to bytes
within 1 % there): the differences are printed first and the exit status depends only on
bytes, digests, PSNR, grids and errors.

Data come from --data-root, else $BENCH_DATA_ROOT, else ../shared/data/coco beside the
repository; the detection model from --models-dir, else $BENCH_MODELS_DIR, else
../shared/models.
"""

from __future__ import annotations

import argparse
import sys
import time

from bench.cli.executor_options import add_executor_options, executor_problem


def register(sub) -> None:
    """Add the ``check`` command to the ``bench`` sub-parsers."""
    p = sub.add_parser(
        "check",
        help="regression gate: re-run a small CI subset and compare with the baseline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--baseline", default=None, metavar="FILE",
                   help="baseline file (default: results/ci_baseline.json in the repository)")
    p.add_argument("--update", action="store_true",
                   help="measure the CI subset and rewrite the baseline instead of comparing")
    p.add_argument("--codec", action="append", metavar="NAME",
                   help="only these codecs (repeatable; default: all of the baseline, or of "
                   "the CI subset with --update)")
    p.add_argument("--images", type=int, default=None, metavar="N",
                   help="with --update: number of images, the first N ids (default: 8)")
    p.add_argument("--no-task", action="store_true",
                   help="with --update: no detection scores in the baseline")
    p.add_argument("--data-root", default=None, help="COCO root (see above)")
    p.add_argument("--models-dir", default=None, help="folder of the detection model")
    add_executor_options(p)
    p.add_argument("--run-dir", default=None, metavar="DIR",
                   help="keep the check's store here (default: a temporary folder); rows "
                   "already in it are reused, so use a fresh folder for a real check")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 also when a codec of the baseline had to be skipped")
    p.set_defaults(func=main)


def _fail(message: str) -> int:
    print(f"bench check: error: {message}", file=sys.stderr)
    return 2


def _log(message: str) -> None:
    print(f"bench check: {message}", file=sys.stderr, flush=True)


def main(args: argparse.Namespace) -> int:
    """Run ``bench check``: 0 passed, 1 regression (or a skip with --strict), 2 bad input."""
    from pathlib import Path

    from bench import gate
    from bench.data.coco import DataError
    from bench.report import check

    t0 = time.perf_counter()
    baseline_path = Path(args.baseline) if args.baseline else check.DEFAULT_BASELINE
    data_root = args.data_root or check.default_data_root()
    models_dir = Path(args.models_dir) if args.models_dir else check.default_models_dir()
    problem = executor_problem(args)
    if problem:
        return _fail(problem)
    try:
        if args.update:
            return _update(args, gate, check, baseline_path, data_root, models_dir, t0)
        if args.images is not None or args.no_task:
            return _fail("--images and --no-task only go with --update (the baseline fixes "
                         "the subset)")
        baseline = check.load_baseline(baseline_path)
        qualities = {c: list(e["cells"]) for c, e in baseline["codecs"].items()
                     if not args.codec or c in args.codec}
        unknown = [c for c in args.codec or [] if c not in baseline["codecs"]]
        if unknown:
            return _fail(f"--codec {', '.join(unknown)}: not in {baseline_path} (it has "
                         f"{', '.join(baseline['codecs'])})")
        task = baseline.get("task")
        model = models_dir / task["model"] if task else None
        _log(f"{sum(map(len, qualities.values()))} cell(s) of {len(qualities)} codec(s) on "
             f"{len(baseline['data']['image_ids'])} image(s)")
        measured = gate.measure(baseline["data"]["image_ids"], qualities,
                                data_root=data_root, model=model,
                                split=baseline["data"]["split"], run_dir=args.run_dir,
                                jobs=args.jobs, executor=args.executor,
                                ray_address=args.ray_address, log=_log)
    except (check.CheckError, DataError) as exc:
        return _fail(str(exc))
    findings = check.compare(baseline, measured)
    env_diffs = check.environment_differences(baseline.get("environment"),
                                              measured.get("environment"))
    if not args.codec:
        for name in check.CI_SUBSET["qualities"]:
            if name not in baseline["codecs"]:
                findings.append(check.Finding("INFO", name, "*", "codec", "absent", "-",
                                              detail="in the CI subset but not in the "
                                              "baseline; run `bench check --update` where "
                                              "it is available"))
    fails = [f for f in findings if f.status == "FAIL"]
    skips = [f for f in findings if f.status == "SKIP"]
    warns = [f for f in findings if f.status == "WARN"]
    seconds = time.perf_counter() - t0
    if env_diffs:
        print(check.format_environment_note(env_diffs, baseline_path.name) + "\n")
    if findings:
        print(check.format_findings(findings))
    cells = sum(len(e["cells"]) for e in measured["codecs"].values())
    n = check.count_values(measured, baseline)
    digests = sum(f.what == "bitstream sha256" for f in warns)
    kinds = []
    if len(warns) > digests:
        kinds.append(f"{len(warns) - digests} task score(s)")
    if digests:
        kinds.append(f"{digests} CPU-dependent bitstream digest(s)")
    warned = (f"; {' and '.join(kinds)} beyond tolerance WARN only (environment differs "
              "from the baseline's)") if warns else ""
    if fails:
        print(f"\nbench check: REGRESSION: {len(fails)} value(s) moved beyond tolerance "
              f"({cells} cells checked, {seconds:.0f} s){warned}. If the change is intended, "
              f"run `bench check --update` and commit {baseline_path.name}.")
        return 1
    skipped = f"; {len(skips)} codec(s) SKIPPED (not checked)" if skips else ""
    print(f"bench check: passed: {cells} cells, {n - len(warns)} values within tolerance"
          f"{warned}{skipped} ({seconds:.0f} s)")
    return 1 if (skips and args.strict) else 0


def _update(args, gate, check, baseline_path, data_root, models_dir, t0) -> int:
    from bench.registry import CODECS

    subset = check.CI_SUBSET
    qualities = dict(subset["qualities"])
    if args.codec:
        chosen = {}
        for name in args.codec:
            if name in qualities:
                chosen[name] = qualities[name]
            else:  # a codec outside the standard subset: its two lowest-rate qualities
                try:
                    chosen[name] = tuple(CODECS.get(name).qualities[:2])
                except Exception as exc:
                    return _fail(f"--codec {name}: {exc}")
        qualities = chosen
    model = None if args.no_task else models_dir / subset["model"]
    n = args.images or subset["images"]
    measured = gate.measure(n, qualities, data_root=data_root, model=model,
                            split=subset["split"], run_dir=args.run_dir, jobs=args.jobs,
                            executor=args.executor, ray_address=args.ray_address,
                            log=_log, probe_determinism=True)
    for name, reason in measured["skipped"].items():
        _log(f"SKIPPED {name} ({reason}): not in the new baseline")
    for name, entry in measured["codecs"].items():
        if entry["off_grid"]:
            return _fail(f"{name}: {', '.join(entry['off_grid'])} not on its grid "
                         f"({', '.join(entry['grid'])}); fix CI_SUBSET in bench/report/check.py")
        if not entry.get("deterministic", True):
            _log(f"{name} gave different bytes coding the same image twice: its bytes are "
                 "checked within 1 %")
    check.write_baseline(check.make_baseline(measured, subset["split"]), baseline_path)
    cpu = measured["environment"]["cpu"]
    _log(f"environment fingerprint recorded: {cpu['model']} ({cpu['id']}, {cpu['arch']}); "
         "AP is gated as FAIL only where the fingerprint matches")
    cells = sum(len(e["cells"]) for e in measured["codecs"].values())
    print(f"bench check: wrote {baseline_path}: {cells} cells of {len(measured['codecs'])} "
          f"codec(s) on {len(measured['image_ids'])} image(s) "
          f"({time.perf_counter() - t0:.0f} s)")
    return 0
