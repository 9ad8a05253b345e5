"""BD-rate of codecs against each other on Kodak (PSNR on 8-bit RGB): by default the VVC and
HEVC anchors against JPEG; ``--codecs``/``--pairs`` compare any registered codecs, e.g. the
learned ones (coded with ``roi="none"``: Kodak has no ROI) against VVC.

Every image is coded at every point of each codec's quality grid; bpp counts all bytes the
codec returns (picture headers included) against the original size, PSNR compares the
decoded RGB image with the original. BD-rate (``bjontegaard``, PCHIP interpolation) is
computed two ways:

* on the mean curve: bpp and PSNR averaged over the images at each grid point (the usual
  way codec papers report data-set BD-rates; this is the headline number);
* per image, then the median of the per-image BD-rates (robust to one odd image).

Targets: VVC vs JPEG <= -40 %, HEVC vs JPEG <= -25 %.

Usage::

    python benchmarks/anchor_bdrate.py                 # all 24 Kodak images, 2 processes
    python benchmarks/anchor_bdrate.py --images 8      # the first 8 images (faster)
    python benchmarks/anchor_bdrate.py --codecs vvc,ggm,gaussian-roi \
        --pairs ggm:vvc,gaussian-roi:vvc,ggm:gaussian-roi

Kodak is read from ``--kodak`` or ``$BENCH_KODAK_DIR`` (default ``<repo>/../shared/data/
kodak``). JPEG is ``bench.codecs.jpeg`` when present, else an equivalent local Pillow codec
(IJG quality, 4:2:0). VVC (vvenc, preset medium) takes a few seconds an image and QP on one
core, so all 24 images take roughly 10 minutes with 2 processes.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.codecs.colour import psnr  # noqa: E402
from bench.codecs.hevc import HevcCodec  # noqa: E402
from bench.codecs.vvc import VvcCodec  # noqa: E402

#: One rate-distortion point: (quality name, bpp, PSNR in dB).
Point = tuple[str, float, float]

JPEG_GRID = ("q3", "q5", "q10", "q20", "q35", "q50", "q70", "q85", "q90")


class PillowJpeg:
    """Baseline JPEG through Pillow (IJG quality, 4:2:0), used if bench.codecs.jpeg is absent."""

    name = "jpeg"
    qualities = JPEG_GRID

    def encode(self, image: np.ndarray, roi: object, quality: str) -> bytes:
        """JFIF bytes of ``image`` at IJG quality ``quality[1:]``."""
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="JPEG", quality=int(quality[1:]), subsampling=2)
        return buf.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        """RGB image of JFIF bytes."""
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"))


def make_codec(name: str, vvc_preset: str):
    """A codec instance by registered name (vvc with ``vvc_preset``; ROI-aware codecs with
    uniform quality, as Kodak has no ROI)."""
    if name == "vvc":
        return VvcCodec(preset=vvc_preset)
    if name == "hevc":
        return HevcCodec()
    if name != "jpeg":
        from bench.registry import CODECS

        cls = CODECS.get(name)
        return cls(roi="none") if getattr(cls, "uses_roi", False) else cls()
    try:
        from bench.codecs.jpeg import JpegCodec
    except ImportError:
        return PillowJpeg()
    return JpegCodec()


def code_image(
    args: tuple[str, str, str],
) -> tuple[str, str, list[Point], float, float]:
    """Code one image at every grid point: (codec, image, [(quality, bpp, psnr)], enc s, dec s)."""
    name, path, vvc_preset = args
    codec = make_codec(name, vvc_preset)
    with Image.open(path) as im:
        image = np.asarray(im.convert("RGB"))
    pixels = image.shape[0] * image.shape[1]
    points, enc_s, dec_s = [], 0.0, 0.0
    for quality in codec.qualities:
        start = time.perf_counter()
        data = codec.encode(image, None, quality)
        mid = time.perf_counter()
        recon = codec.decode(data)
        enc_s += mid - start
        dec_s += time.perf_counter() - mid
        points.append((quality, len(data) * 8 / pixels, psnr(image, recon)))
    count = len(codec.qualities)
    return name, path, points, enc_s / count, dec_s / count


def bd_rate(anchor: list[Point], test: list[Point]) -> float:
    """BD-rate in percent of ``test`` against ``anchor`` (lists of (quality, bpp, psnr))."""
    import bjontegaard as bd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the package warns when PSNR ranges overlap < 75 %
        return float(
            bd.bd_rate(
                [p[1] for p in anchor],
                [p[2] for p in anchor],
                [p[1] for p in test],
                [p[2] for p in test],
                method="pchip",
                require_matching_points=False,
            )
        )


def mean_curve(curves: list[list[Point]]) -> list[Point]:
    """Per grid point: the mean bpp and mean PSNR over images."""
    return [
        (
            points[0][0],
            float(np.mean([p[1] for p in points])),
            float(np.mean([p[2] for p in points])),
        )
        for points in zip(*curves, strict=True)
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    default_kodak = os.environ.get("BENCH_KODAK_DIR") or str(REPO.parent / "shared/data/kodak")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kodak", default=default_kodak, help="folder of kodim*.png")
    parser.add_argument("--images", type=int, default=24, help="first N Kodak images")
    parser.add_argument("--jobs", type=int, default=2, help="parallel processes")
    parser.add_argument("--vvc-preset", default="medium", help="vvenc preset")
    parser.add_argument("--codecs", default="jpeg,hevc,vvc", help="codecs to run (comma list)")
    parser.add_argument("--pairs", default="vvc:jpeg,hevc:jpeg,vvc:hevc",
                        help="BD-rates to print, TEST:ANCHOR (comma list)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Code Kodak with the codecs, print the mean curves and the BD-rates of the pairs."""
    args = parse_args(argv)
    paths = sorted(str(p) for p in Path(args.kodak).glob("kodim*.png"))[: args.images]
    if not paths:
        print(f"no kodim*.png in {args.kodak} (set --kodak or BENCH_KODAK_DIR)")
        return 2
    names = tuple(n.strip() for n in args.codecs.split(",") if n.strip())
    pairs = [tuple(p.split(":")) for p in args.pairs.split(",") if p.strip()]
    unknown = sorted({n for pair in pairs for n in pair} - set(names))
    if unknown or any(len(p) != 2 for p in pairs):
        print(f"--pairs must be TEST:ANCHOR of --codecs; not run: {', '.join(unknown)}")
        return 2
    for name in names:
        codec = make_codec(name, args.vvc_preset)
        version = codec.version() if hasattr(codec, "version") else "local Pillow JPEG"
        print(f"{name}: {version}")
    tasks = [(name, path, args.vvc_preset) for name in names for path in paths]
    curves: dict[str, dict[str, list]] = {name: {} for name in names}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for name, path, points, enc_s, dec_s in pool.map(code_image, tasks):
            curves[name][path] = points
            times[name].append((enc_s, dec_s))
    print(f"{len(paths)} Kodak images, {time.perf_counter() - started:.0f} s wall\n")

    means = {name: mean_curve([curves[name][p] for p in paths]) for name in names}
    for name in names:
        enc = statistics.mean(t[0] for t in times[name])
        dec = statistics.mean(t[1] for t in times[name])
        print(f"{name:5s} per image and quality: encode {enc:.2f} s, decode {dec:.3f} s")
        print("      " + "  ".join(f"{q}:{b:.3f}bpp/{d:.2f}dB" for q, b, d in means[name]))
    print()
    for test, anchor in pairs:
        headline = bd_rate(means[anchor], means[test])
        per_image = [bd_rate(curves[anchor][p], curves[test][p]) for p in paths]
        print(
            f"BD-rate {test} vs {anchor}: {headline:+.1f} % (mean curve), "
            f"median per image {statistics.median(per_image):+.1f} % "
            f"[{min(per_image):+.1f} .. {max(per_image):+.1f}]"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
