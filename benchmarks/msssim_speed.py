"""MS-SSIM speed: the new float32 PyTorch implementation against the one it replaced.

Both sides compute MS-SSIM of the same real pairs: the first ``--images`` shared COCO
val2017 images (by id) against their Pillow JPEG reconstruction at ``--quality``. The old
side is the scipy implementation that ``bench/metrics.py`` had up to commit 48136a1 (ten
``correlate1d`` passes over five maps per scale, float32), kept here verbatim as the
reference. One thread for both (scipy's filters are single-threaded; PyTorch is set to
one intra-op thread). Repeats are interleaved, alternating which side goes first, and the
median total time per side is compared.

Prints per-side medians, the largest |old − new| over the pairs, and last
``speedup <old / new>`` (target ≥ 3).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench.metrics import MS_SSIM_WEIGHTS, PEAK, ms_ssim

# ----------------------------------------------------- the implementation before this one
_WIN_SIZE, _WIN_SIGMA, _K1, _K2 = 11, 1.5, 0.01, 0.03


def _gaussian_window() -> np.ndarray:
    x = np.arange(_WIN_SIZE, dtype=np.float64) - (_WIN_SIZE - 1) / 2
    g = np.exp(-(x**2) / (2 * _WIN_SIGMA**2))
    return g / g.sum()


def _filter_valid(stack: np.ndarray, win: np.ndarray) -> np.ndarray:
    from scipy.ndimage import correlate1d

    out = correlate1d(stack, win, axis=1, mode="constant")
    out = correlate1d(out, win, axis=2, mode="constant")
    r = _WIN_SIZE // 2
    return out[:, r : out.shape[1] - r, r : out.shape[2] - r]


def _ssim_terms(x: np.ndarray, y: np.ndarray, win: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c1, c2 = (_K1 * PEAK) ** 2, (_K2 * PEAK) ** 2
    f = _filter_valid(np.concatenate([x, y, x * x, y * y, x * y]), win)
    n = x.shape[0]
    mx, my, xx, yy, xy = (f[i * n : (i + 1) * n] for i in range(5))
    vx, vy, cov = xx - mx * mx, yy - my * my, xy - mx * my
    cs = (2 * cov + c2) / (vx + vy + c2)
    ssim = (2 * mx * my + c1) / (mx * mx + my * my + c1) * cs
    return ssim.mean(axis=(1, 2)), cs.mean(axis=(1, 2))


def _halve(x: np.ndarray) -> np.ndarray:
    h, w = x.shape[1] // 2 * 2, x.shape[2] // 2 * 2
    x = x[:, :h, :w]
    return 0.25 * (x[:, 0::2, 0::2] + x[:, 1::2, 0::2] + x[:, 0::2, 1::2] + x[:, 1::2, 1::2])


def ms_ssim_scipy(a: np.ndarray, b: np.ndarray) -> float:
    """The previous implementation (sizes ≥ 176 px only, as the new one)."""
    x = np.moveaxis(a, 2, 0).astype(np.float32)
    y = np.moveaxis(b, 2, 0).astype(np.float32)
    win = _gaussian_window().astype(np.float32)
    weights = np.asarray(MS_SSIM_WEIGHTS)
    factors = []
    for level in range(len(weights)):
        ssim, cs = _ssim_terms(x, y, win)
        last = level == len(weights) - 1
        factors.append(np.maximum(ssim if last else cs, 0.0).astype(np.float64))
        if not last:
            x, y = _halve(x), _halve(y)
    per_channel = np.prod(np.stack(factors) ** weights[:, None], axis=0)
    return float(per_channel.mean())


# ------------------------------------------------------------------------------ benchmark
def load_pairs(root: Path, count: int, quality: int) -> list[tuple[np.ndarray, np.ndarray]]:
    doc = json.loads((root / "annotations" / "instances_val2017.json").read_text())
    pairs = []
    for info in sorted(doc["images"], key=lambda i: i["id"])[:count]:
        with Image.open(root / "val2017" / info["file_name"]) as im:
            a = np.asarray(im.convert("RGB"))
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="JPEG", quality=quality)
        with Image.open(io.BytesIO(buf.getvalue())) as im:
            pairs.append((a, np.asarray(im.convert("RGB"))))
    return pairs


def main() -> None:
    import torch

    repo = Path(__file__).resolve().parents[1]
    default_root = os.environ.get("BENCH_DATA_ROOT") or str(repo.parent / "shared/data/coco")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=default_root)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--quality", type=int, default=50, help="JPEG quality of the pairs")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    pairs = load_pairs(Path(args.data_root), args.images, args.quality)
    sides = {"old": ms_ssim_scipy, "new": lambda a, b: ms_ssim(a, b)[0]}
    for f in sides.values():  # warm-up: imports, kernels, allocator
        f(*pairs[0])
    times: dict[str, list[float]] = {k: [] for k in sides}
    for r in range(args.repeats):
        order = list(sides) if r % 2 == 0 else list(sides)[::-1]
        total = dict.fromkeys(sides, 0.0)
        for a, b in pairs:
            for name in order:
                t0 = time.perf_counter()
                sides[name](a, b)
                total[name] += time.perf_counter() - t0
        for name in sides:
            times[name].append(total[name])
        print(f"repeat {r}: old {total['old']:.3f} s, new {total['new']:.3f} s", flush=True)
    diff = max(abs(sides["old"](a, b) - sides["new"](a, b)) for a, b in pairs)
    old, new = statistics.median(times["old"]), statistics.median(times["new"])
    sizes = sorted({f"{a.shape[1]}x{a.shape[0]}" for a, _ in pairs})
    print(f"{len(pairs)} pairs ({', '.join(sizes)}), JPEG q{args.quality}, one thread")
    print(f"median per pair: old {old / len(pairs) * 1e3:.1f} ms, "
          f"new {new / len(pairs) * 1e3:.1f} ms; max |old - new| {diff:.2e}")
    print(f"speedup {old / new:.2f}")


if __name__ == "__main__":
    main()
