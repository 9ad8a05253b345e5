"""The CI regression gate: re-run a small fixed subset and compare it with a committed baseline.

The subset (:data:`CI_SUBSET`) is 8 shared COCO val2017 images, two cheap qualities of every
codec (the ceiling ``original`` at its one point) and detection with
``yolov8n_integer_quant.tflite``; MS-SSIM is left out (it would double the metric time and
PSNR already sees any change of the pixels). Per (codec, quality) the gate compares, with
:data:`TOLERANCES`:

* bytes summed over the images, exactly for a codec whose encoder gave the same bytes twice
  when the baseline was made (all of this project's codecs do: Pillow, ffmpeg encoders run
  single-threaded, and the learned codecs run one CPU thread), else within 1 %; for exact
  codecs also a digest of the bitstreams;
* PSNR, ROI-PSNR and background PSNR within ±0.01 dB;
* detection AP and AP50 within ±0.3 (AP points, percent);
* the codec's quality grid and the model file's sha256, exactly.

A codec of the baseline that cannot run here is reported as skipped, never passed silently.
The baseline (``results/ci_baseline.json``) records the subset, the tolerances, each codec's
version, grid and determinism, every compared value and the environment that decides task
scores (:func:`environment_fingerprint`: CPU model and ISA flags, versions of the detector's
packages); ``bench check --update`` rewrites it. Where the environment here differs from the
baseline's (or the baseline records none), AP and AP50 beyond tolerance are WARN, not FAIL:
AP moves with the smallest pixel change, and both the int8 detector's kernels and some
codecs' decoded pixels (libjxl's) may depend on the CPU, so AP is only comparable on the
machine that made the baseline. Likewise a codec whose bytes depend on the CPU's float kernels
(``cpu_exact = False``: the learned codecs) is held there to bytes within 1 % and its
bitstream digest is WARN; its PSNR and everything else are gated the same everywhere.

This module compares and keeps the baseline; it runs no codec. The coding and scoring of
the subset is :func:`bench.gate.measure`, through the same pipeline as ``bench run``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import bench
from bench.metrics import capped_psnr

REPO = Path(bench.__file__).resolve().parents[1]
DEFAULT_BASELINE = REPO / "results" / "ci_baseline.json"
BASELINE_FORMAT = 1

#: What ``--update`` measures: image count and per codec the qualities (cheap ones).
CI_SUBSET: dict = {
    "split": "val2017",
    "images": 8,
    "task": "detection",
    "model": "yolov8n_integer_quant.tflite",
    "qualities": {
        "jpeg": ("q10", "q50"),
        "webp": ("q25", "q65"),
        "jpeg2000": ("cr120", "cr32"),
        "jpegxl": ("d6", "d2.5"),
        "hevc": ("qp42", "qp37"),
        "vvc": ("qp47", "qp42"),
        "av1": ("crf60", "crf52"),
        "original": ("source",),
        "ggm": ("q1", "q4"),
        "gaussian-roi": ("q1", "q4"),
    },
}

#: Allowed |now − baseline| per compared value (bytes: see the module docstring).
TOLERANCES: dict[str, float] = {
    "bytes": 0.0, "bytes_relative_nondeterministic": 0.01, "psnr": 0.01, "roi_psnr": 0.01,
    "bg_psnr": 0.01, "det_ap": 0.3, "det_ap50": 0.3,
}
_METRICS = ("psnr", "roi_psnr", "bg_psnr")
#: (baseline key, COCO IoU type, statistic) of the task scores a cell holds.
TASK_STATS = (("det_ap", "bbox", "AP"), ("det_ap50", "bbox", "AP50"))
_TASK_KEYS = frozenset(k for k, _, _ in TASK_STATS)


class CheckError(RuntimeError):
    """The gate cannot run (no baseline, no data, no model); the message says what to do."""


def default_data_root() -> Path:
    """``$BENCH_DATA_ROOT``, else the shared COCO subset beside the repository."""
    env = os.environ.get("BENCH_DATA_ROOT")
    return Path(env) if env else REPO.parent / "shared" / "data" / "coco"


def default_models_dir() -> Path:
    """``$BENCH_MODELS_DIR``, else the shared models folder beside the repository."""
    env = os.environ.get("BENCH_MODELS_DIR")
    return Path(env) if env else REPO.parent / "shared" / "models"


#: Distributions whose versions can move task scores (detector runtimes, decoding, arrays).
ENV_PACKAGES = ("ultralytics", "ai-edge-litert", "onnxruntime", "opencv-python", "numpy",
                "torch")
#: CPU features that select int8 / bf16 kernels (XNNPACK, oneDNN): x86 and Arm.
ENV_CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8",
                 "asimddp", "i8mm")


def environment_fingerprint() -> dict:
    """The CPU and package versions that decide task scores; recorded in the baseline.

    Why: bytes and PSNR of the classical codecs do not depend on the machine (the learned
    codecs' bytes can: :attr:`bench.codecs.base.Codec.cpu_exact`), but the int8 TFLite
    detector (ultralytics on ai-edge-litert, XNNPACK) picks its kernels from the CPU's
    features (AVX-512 VNNI, AVX-VNNI, AMX, ...) and they round differently: the same
    reconstructions score up to ~4 AP apart on two CPU models, deterministically on each.
    ``bench check`` gates AP only where this fingerprint equals the baseline's. Reads
    ``/proc/cpuinfo`` (first processor) and installed distributions' metadata; nothing is
    imported and no subprocess is run.
    """
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if not line.strip():
                if info:
                    break  # end of the first processor's block
                continue
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    flags = set((info.get("flags") or info.get("Features") or "").split())
    if "vendor_id" in info:
        cpu_id = f"{info['vendor_id']} {info.get('cpu family', '?')}/{info.get('model', '?')}"
    else:
        cpu_id = f"{info.get('CPU implementer', '?')}/{info.get('CPU part', '?')}"
    packages = {}
    for dist in ENV_PACKAGES:
        try:
            packages[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            packages[dist] = None
    return {
        "cpu": {"model": info.get("model name") or platform.processor() or platform.machine(),
                "id": cpu_id, "arch": platform.machine(),
                "flags": {f: f in flags for f in ENV_CPU_FLAGS}},
        "packages": packages,
    }


def _flat_environment(env: dict) -> dict[str, str]:
    cpu = env.get("cpu") or {}
    out = {"cpu model": str(cpu.get("model")), "cpu id": str(cpu.get("id")),
           "cpu arch": str(cpu.get("arch"))}
    for flag, present in (cpu.get("flags") or {}).items():
        out[f"cpu flag {flag}"] = "present" if present else "absent"
    for dist, version in (env.get("packages") or {}).items():
        out[dist] = version or "not installed"
    return out


def describe_environment(env: dict) -> str:
    """A fingerprint on one line: CPU, the listed ISA flags present, package versions."""
    cpu = env.get("cpu") or {}
    flags = " ".join(f for f, present in (cpu.get("flags") or {}).items() if present)
    packages = ", ".join(f"{d} {v or 'not installed'}"
                         for d, v in (env.get("packages") or {}).items())
    return (f"{cpu.get('model')} ({cpu.get('id')}, {cpu.get('arch')}; flags: {flags or 'none'});"
            f" {packages}")


def environment_differences(baseline_env: dict | None, env: dict | None) -> list[str]:
    """What differs between the baseline's fingerprint and this one ([] when they match)."""
    if not baseline_env:
        here = [f"here: {describe_environment(env)}"] if env else []
        return ["the baseline records no environment fingerprint (made before bench check "
                "recorded one)", *here]
    if not env:
        return ["no environment fingerprint was measured here"]
    base, now = _flat_environment(baseline_env), _flat_environment(env)
    return [f"{key}: {base.get(key, 'not recorded')!r} (baseline) -> "
            f"{now.get(key, 'not recorded')!r} (here)"
            for key in [*base, *(k for k in now if k not in base)]
            if base.get(key) != now.get(key)]


def float_kernels_differ(baseline_env: dict | None, env: dict | None) -> bool:
    """Whether the float arithmetic of a torch model may round differently here than where
    the baseline was made: another CPU (model, id, architecture or ISA flags) or another torch
    version, or a fingerprint missing on either side. Other package versions do not count."""
    if not baseline_env or not env:
        return True
    base, now = _flat_environment(baseline_env), _flat_environment(env)
    keys = [k for k in {*base, *now} if k.startswith("cpu ") or k == "torch"]
    return any(base.get(k) != now.get(k) for k in keys)


def format_environment_note(differences: Sequence[str], baseline_name: str) -> str:
    """The report's header when the environment differs from the baseline's."""
    lines = ["bench check: the CPU/package fingerprint here differs from the baseline's:"]
    lines += [f"  {d}" for d in differences]
    lines += ["AP of int8 detectors depends on the CPU kernels the runtime picks (VNNI, AMX, "
              "...) and on package versions,",
              "so task scores (det_ap, det_ap50) beyond tolerance are WARN here, not FAIL; "
              "where the CPU or torch differs, so are the bitstream digests of codecs that "
              "code through CPU-dependent float kernels (the learned codecs; their bytes "
              "within 1 %); the other bytes and digests, PSNR and errors are gated as always.",
              f"To gate AP again, run `bench check --update` on the CI machine and commit "
              f"{baseline_name}."]
    return "\n".join(lines)


@dataclass(frozen=True)
class Finding:
    """One line of the gate's verdict."""

    status: str  # FAIL, WARN, SKIP or INFO
    codec: str
    quality: str
    what: str
    baseline: str
    now: str
    delta: str = ""
    tolerance: str = ""
    detail: str = ""


def _mean(values: Sequence[float]) -> float:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return math.fsum(vals) / len(vals) if vals else math.nan


def _digest(hashes: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(hashes).encode()).hexdigest()


def cell_of(rows, n_images: int) -> dict:
    """The baseline cell of one (codec, quality): summed bytes, bitstream digest, mean
    PSNRs and the errors, from its stored rows over ``n_images`` images."""
    ok = [r for r in rows if r.ok]
    cell = {"images": len(ok), "errors": [f"{r.image_id}: {r.error}" for r in rows if not r.ok],
            "bytes": sum(r.bytes for r in ok),
            "image_bytes": {str(r.image_id): r.bytes for r in ok},
            "sha256": _digest([f"{r.image_id}:{r.sha256}" for r in ok])}
    for m in _METRICS:  # capped as every other mean is, so the file stays standard JSON
        cell[m] = _mean([None if getattr(r, m) is None else capped_psnr(getattr(r, m))
                         for r in ok])
    if len(ok) < n_images:
        cell["missing"] = n_images - len(ok)
    return cell


# ----------------------------------------------------------------------- baseline
def make_baseline(measured: dict, split: str) -> dict:
    """The baseline document for measured values."""
    return {
        "format": BASELINE_FORMAT,
        "made_by": "bench check --update",
        "data": {"split": split, "image_ids": measured["image_ids"]},
        "task": measured["task"],
        "environment": measured.get("environment") or environment_fingerprint(),
        "tolerances": TOLERANCES,
        "codecs": {name: {k: v for k, v in entry.items() if k != "off_grid"}
                   for name, entry in measured["codecs"].items()},
    }


def load_baseline(path: str | Path) -> dict:
    """Read a baseline file, checking its format."""
    p = Path(path)
    if not p.is_file():
        raise CheckError(f"no baseline at {p}; make one with `bench check --update`")
    try:
        doc = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise CheckError(f"{p} is not valid JSON ({exc}); rewrite it with "
                         "`bench check --update`") from exc
    if doc.get("format") != BASELINE_FORMAT:
        raise CheckError(f"{p} has format {doc.get('format')!r}, this bench reads "
                         f"{BASELINE_FORMAT}; rewrite it with `bench check --update`")
    return doc


def write_baseline(doc: dict, path: str | Path) -> None:
    """Write a baseline file (stable key order, one value per line, for readable diffs)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")


# ----------------------------------------------------------------------- comparing
def _fmt(v) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf"
        return f"{v:.4f}"
    return str(v)


def _same(a, b, tol: float) -> bool:
    if a is None or b is None:
        return a is b
    if isinstance(a, float) or isinstance(b, float):
        a, b = float(a), float(b)
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        if math.isinf(a) or math.isinf(b):
            return a == b
    return abs(a - b) <= tol + 1e-12


def compare(baseline: dict, measured: dict) -> list[Finding]:
    """Every difference between the baseline and a measurement, as findings.

    Task scores (AP, AP50) beyond tolerance are FAIL where the measurement's environment
    fingerprint equals the baseline's, else WARN (both values finite; a score that became
    NaN still fails).
    """
    tol = {**TOLERANCES, **baseline.get("tolerances", {})}
    task_warn = bool(environment_differences(baseline.get("environment"),
                                             measured.get("environment")))
    float_warn = float_kernels_differ(baseline.get("environment"), measured.get("environment"))
    out: list[Finding] = []
    bt, mt = baseline.get("task"), measured.get("task")
    if bt and mt and bt.get("sha256") != mt.get("sha256"):
        out.append(Finding("FAIL", "*", "*", f"model {bt.get('model')} sha256",
                           bt.get("sha256", "")[:16], mt.get("sha256", "")[:16],
                           detail="a different model file: AP values are not comparable"))
    for name, reason in measured.get("skipped", {}).items():
        out.append(Finding("SKIP", name, "*", "codec", "checked", "skipped", detail=reason))
    for name, base in baseline["codecs"].items():
        now = measured["codecs"].get(name)
        if now is None:
            continue  # skipped (reported above) or not selected
        if base["version"] != now["version"]:
            out.append(Finding("INFO", name, "*", "version", base["version"], now["version"],
                               detail="codec version string changed"))
        if list(base["grid"]) != list(now["grid"]):
            out.append(Finding("FAIL", name, "*", "quality grid", ",".join(base["grid"]),
                               ",".join(now["grid"]), detail="the default quality grid moved"))
        for q in now.get("off_grid", []):
            out.append(Finding("FAIL", name, q, "quality", "on grid", "not on the grid",
                               detail="the baseline's quality is gone from the codec's grid"))
        exact = base.get("deterministic", True)
        cpu_warn = float_warn and not now.get("cpu_exact", True)
        for q, bcell in base["cells"].items():
            ncell = now["cells"].get(q)
            if ncell is None:
                continue  # off the grid: reported above
            out += _compare_cell(name, q, bcell, ncell, tol, exact, task_warn, cpu_warn)
    return out


def _compare_cell(name: str, q: str, b: dict, n: dict, tol: dict, exact: bool,
                  task_warn: bool = False, cpu_warn: bool = False) -> list[Finding]:
    """Findings of one (codec, quality). ``task_warn``: AP beyond tolerance is WARN (another
    environment); ``cpu_warn``: also bytes within 1 % and the digest (a codec whose bytes
    depend on the CPU, where :func:`float_kernels_differ`)."""
    out = []
    if n.get("errors"):
        out.append(Finding("FAIL", name, q, "errors", "0", str(len(n["errors"])),
                           detail="; ".join(n["errors"][:2])))
    if b["images"] != n["images"]:
        out.append(Finding("FAIL", name, q, "images", str(b["images"]), str(n["images"])))
    if "task_images" in n and n["task_images"] < n["images"]:  # AP over fewer images
        out.append(Finding("FAIL", name, q, "task images", str(n["images"]),
                           str(n["task_images"]), detail="the detector failed on (or has no "
                           "prediction for) some reconstructions; AP would be over fewer "
                           "images"))
    btol = 0.0 if exact and not cpu_warn else (
        tol["bytes_relative_nondeterministic"] * b["bytes"])
    if not _same(b["bytes"], n["bytes"], btol):
        moved = [f"{i} ({n['image_bytes'].get(i, 0) - nb:+d})"
                 for i, nb in b["image_bytes"].items() if n["image_bytes"].get(i) != nb]
        detail = "image " + ", ".join(moved[:4]) + (" …" if len(moved) > 4 else "")
        out.append(Finding("FAIL", name, q, "bytes", str(b["bytes"]), str(n["bytes"]),
                           f"{n['bytes'] - b['bytes']:+d}",
                           "exact" if btol == 0 else f"±{btol:.0f}", detail))
    elif exact and b.get("sha256") != n.get("sha256"):
        same = "same sizes" if b["bytes"] == n["bytes"] else f"{n['bytes'] - b['bytes']:+d} bytes"
        out.append(Finding("WARN" if cpu_warn else "FAIL", name, q, "bitstream sha256",
                           b["sha256"][:12], n["sha256"][:12], tolerance="exact",
                           detail=(f"{same}, different bytes; float kernels differ on "
                                   "this CPU (see above): not gated") if cpu_warn else
                           f"{same}, different bytes"))
    for key in (*_METRICS, *(k for k, _, _ in TASK_STATS)):
        if key not in b:
            continue
        bv, nv = b[key], n.get(key, math.nan)
        if key in _METRICS and bv is not None:  # a baseline from before the cap held +inf
            bv = capped_psnr(bv)
        if not _same(bv, nv, tol[key]):
            finite = all(map(math.isfinite, (bv, nv)))
            delta = nv - bv if finite else math.nan
            if task_warn and finite and key in _TASK_KEYS:
                out.append(Finding("WARN", name, q, key, _fmt(bv), _fmt(nv), _fmt(delta),
                                   f"±{tol[key]}", "environment differs (see above): not "
                                   "gated"))
                continue
            out.append(Finding("FAIL", name, q, key, _fmt(bv), _fmt(nv), _fmt(delta),
                               f"±{tol[key]}"))
    return out


def format_findings(findings: Sequence[Finding]) -> str:
    """The findings as an aligned table (status, codec, quality, what moved, by how much)."""
    heads = ("status", "codec", "quality", "value", "baseline", "now", "delta", "tolerance",
             "detail")
    rows = [(f.status, f.codec, f.quality, f.what, f.baseline, f.now, f.delta, f.tolerance,
             f.detail) for f in findings]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(heads)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))  # noqa: E731
    return "\n".join([line(heads).rstrip(), "  ".join("-" * w for w in widths)]
                     + [line(r).rstrip() for r in rows])


def count_values(measured: dict, baseline: dict) -> int:
    """How many values were compared (for the summary line)."""
    n = 0
    for name, entry in measured["codecs"].items():
        for q, cell in baseline["codecs"].get(name, {}).get("cells", {}).items():
            if q in entry["cells"]:
                n += sum(1 for k in ("bytes", *_METRICS, "det_ap", "det_ap50") if k in cell)
    return n
