"""Rate accuracy and speed of the released learned ROI codecs (``ggm``, ``gaussian-roi``).

Side by side, on the same COCO val2017 images with their GT ROI:

* **actual vs estimated rate**, per grid point: the estimate is ``-log2`` of the model's
  likelihoods of the hard-quantized latents (``y`` and ``z``, evaluation mode, the
  unquantized entropy parameters); "payload" is the length of the two rANS strings; "file" is
  the whole bitstream (header, latent quality map, string lengths), the bytes bpp counts;
  "file 2" the whole bitstream in format 2 (map, z and y in one rANS string,
  :mod:`bench.learned.stream`), the next release's. Ratios are Σactual / Σestimated over the
  images. Format 2's excess over the estimate is then split, in bytes per picture, into the
  header (everything before the rANS string), the ROI map's information under its context
  model (:func:`bench.learned.mapcoding.information_bits`) and the rest, the coder's
  (its final state and word alignment, and the tables' rounding of the model's
  probabilities).
* **encode + decode time** per image at 640×480 (images of exactly that size; one thread, as
  the codecs run), repeats interleaved between the two codecs, medians reported; beside each
  encode, the same encode with the encoder's reconstruction (the synthesis transform, which
  encodes ran until 2026-12-05 and the bitstream does not need), and their ratio.

Run: ``python benchmarks/learned_codecs.py [--data-root ../shared/data/coco] [--limit 79]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from bench.codecs.base import CodecUnavailable
from bench.data.coco import CocoDataset
from bench.learned.bitstream import map_in_stream, unpack
from bench.learned.coding import decode_image, encode_image, model_inputs
from bench.learned.layers import single_thread
from bench.learned.mapcoding import information_bits
from bench.learned.qmap import GRID_NAMES, grid_point
from bench.registry import CODECS

CODEC_NAMES = ("ggm", "gaussian-roi")


def estimated_bits(model, inputs) -> tuple[float, float]:
    """Model-estimated bits of ``y`` and of ``z`` for one image, as the encoder would code it
    (``inputs``: :func:`bench.learned.coding.model_inputs`)."""
    x, q, q_lat, _ = inputs
    with single_thread(), torch.inference_mode():
        out = model(x, q, q_lat)
    lik = out["likelihoods"]
    return (float(-torch.log2(lik["y"]).sum()), float(-torch.log2(lik["z"]).sum()))


def rate_table(models: dict, samples) -> list[dict]:
    rows = []
    for name, model in models.items():
        for quality in GRID_NAMES:
            point = grid_point(quality)
            est = payload = file_bits = file2_bits = header2 = map_bits = pixels = 0.0
            for s in samples:
                inputs = model_inputs(s.image, s.roi, point, "gt")
                ey, ez = estimated_bits(model, inputs)
                data, out = encode_image(model, s.image, s.roi, point, "gt", return_details=True,
                                         stream_format=1)
                data2 = encode_image(model, s.image, s.roi, point, "gt", stream_format=2)
                file2_bits += 8 * len(data2)
                header2 += 8 * (len(data2) - len(unpack(data2).stream))
                codes = inputs[3]
                if map_in_stream(codes):
                    map_bits += information_bits((codes == codes.max()).astype(np.uint8))
                est += ey + ez
                payload += 8 * (len(out["y"]) + len(out["z"]))
                file_bits += 8 * len(data)
                pixels += s.image.shape[0] * s.image.shape[1]
            rows.append({"codec": name, "quality": quality, "est_bpp": est / pixels,
                         "payload_bpp": payload / pixels, "file_bpp": file_bits / pixels,
                         "payload_ratio": payload / est, "file_ratio": file_bits / est,
                         "file2_ratio": file2_bits / est, "est_B": est / 8 / len(samples),
                         "header2_B": header2 / 8 / len(samples),
                         "map2_B": map_bits / 8 / len(samples),
                         "coder2_B": (file2_bits - header2 - map_bits - est) / 8 / len(samples),
                         "file2_map_ratio": file2_bits / (est + map_bits)})
    return rows


def timing(models: dict, samples, quality: str, repeats: int) -> dict[str, dict[str, float]]:
    point = grid_point(quality)
    times: dict[str, dict[str, list[float]]] = {
        n: {"encode": [], "decode": [], "encode_x_hat": []} for n in models
    }
    for r in range(repeats):
        order = list(models) if r % 2 == 0 else list(reversed(list(models)))
        for name in order:
            model = models[name]
            for s in samples:
                t0 = time.perf_counter()
                data = encode_image(model, s.image, s.roi, point, "gt")
                t1 = time.perf_counter()
                decode_image(model, data)
                t2 = time.perf_counter()
                again, _ = encode_image(model, s.image, s.roi, point, "gt", return_details=True)
                t3 = time.perf_counter()
                if again != data:
                    raise SystemExit(f"{name}: the encode with its reconstruction gave other bytes")
                times[name]["encode"].append(t1 - t0)
                times[name]["decode"].append(t2 - t1)
                times[name]["encode_x_hat"].append(t3 - t2)
    return {n: {k: statistics.median(v) for k, v in d.items()} for n, d in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=None, help="COCO root (default: $BENCH_DATA_ROOT)")
    ap.add_argument("--limit", type=int, default=None, help="images for the rate table (all)")
    ap.add_argument("--timing-images", type=int, default=5, help="640×480 images timed (5)")
    ap.add_argument("--timing-quality", default="q5", help="grid point timed (q5)")
    ap.add_argument("--repeats", type=int, default=3, help="timing repeats (3)")
    ap.add_argument("--no-rates", action="store_true", help="skip the rate table")
    ap.add_argument("--no-timing", action="store_true", help="skip the timing")
    ap.add_argument("--weights-dir", default=None,
                    help="folder with ggm.pt and gaussian-roi.pt (default: the package's)")
    args = ap.parse_args()
    torch.set_num_threads(1)

    models = {}
    for name in CODEC_NAMES:
        weights = f"{args.weights_dir}/{name}.pt" if args.weights_dir else None
        codec = CODECS.create(name, weights=weights)
        try:
            models[name] = codec.model
        except CodecUnavailable as exc:
            raise SystemExit(f"{name}: {exc}") from exc
    samples = list(CocoDataset(args.data_root, "val2017", limit=args.limit))
    print(f"{len(samples)} val2017 images, GT ROI")

    if not args.no_rates:
        print_rates(rate_table(models, samples), models)
    if not args.no_timing:
        print_timing(models, samples, args)


def print_rates(rows: list[dict], models: dict) -> None:
    print(f"{'codec':<13}{'quality':<8}{'est bpp':>9}{'payload':>9}{'file':>9}"
          f"{'payload/est':>13}{'file/est':>10}{'file 2/est':>12}")
    for r in rows:
        print(f"{r['codec']:<13}{r['quality']:<8}{r['est_bpp']:>9.4f}{r['payload_bpp']:>9.4f}"
              f"{r['file_bpp']:>9.4f}{r['payload_ratio']:>13.4f}{r['file_ratio']:>10.4f}"
              f"{r['file2_ratio']:>12.4f}")
    print("format 2 over the estimate, bytes per picture (file 2/est+map: the map's own "
          "estimate counted as the model's too):")
    print(f"{'codec':<13}{'quality':<8}{'est':>9}{'header':>8}{'map':>7}{'coder':>7}"
          f"{'file 2/est+map':>16}")
    for r in rows:
        print(f"{r['codec']:<13}{r['quality']:<8}{r['est_B']:>9.1f}{r['header2_B']:>8.1f}"
              f"{r['map2_B']:>7.1f}{r['coder2_B']:>7.1f}{r['file2_map_ratio']:>16.4f}")
    for name in models:
        mine = [r for r in rows if r["codec"] == name]
        worst = max(mine, key=lambda r: abs(r["file_ratio"] - 1))
        worst_payload = max(mine, key=lambda r: abs(r["payload_ratio"] - 1))
        worst2 = max(mine, key=lambda r: abs(r["file2_ratio"] - 1))
        print(f"{name}: worst file/est {worst['file_ratio']:.4f} at {worst['quality']}; "
              f"format 2 {worst2['file2_ratio']:.4f} at {worst2['quality']}; "
              f"worst payload/est {worst_payload['payload_ratio']:.4f} "
              f"at {worst_payload['quality']}")


def print_timing(models: dict, samples, args) -> None:
    vga = [s for s in samples if s.image.shape[:2] == (480, 640)][: args.timing_images]
    if not vga:
        raise SystemExit("no 640×480 image among the samples; raise --limit")
    t = timing(models, vga, args.timing_quality, args.repeats)
    print(f"timing: {len(vga)} images of 640×480, {args.timing_quality}, 1 thread, "
          f"medians of {args.repeats} interleaved repeats")
    for name, d in t.items():
        print(f"{name}: encode {d['encode']:.3f} s, decode {d['decode']:.3f} s, "
              f"total {d['encode'] + d['decode']:.3f} s; encode with the reconstruction "
              f"{d['encode_x_hat']:.3f} s (encode_speedup {d['encode_x_hat'] / d['encode']:.2f})")
    a, b = CODEC_NAMES
    ratio = (t[a]["encode"] + t[a]["decode"]) / (t[b]["encode"] + t[b]["decode"])
    print(f"time_ratio {a}/{b} {ratio:.3f}")


if __name__ == "__main__":
    main()
