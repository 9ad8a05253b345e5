"""Task-scoring overhead: `bench run --task detection` vs a bare loop of `model.predict`.

Both sides run as fresh processes on the same images (default: the 79 shared val2017
images, uncompressed: codec ``original``), interleaved, median wall time compared. The
coding rows are stored once beforehand, untimed, so the harness side times what task
scoring costs: loading the model, decoding stored bitstreams, predicting with the COCO
settings, converting to COCO results, committing them, COCOeval and the table. The bare
side loads the model, reads each image file and calls ``model.predict`` with the same
settings.

Last line: ``overhead_ratio <harness / bare>`` (target ≤ 1.10).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _timing import timed_command

BARE_LOOP = r"""
import json, sys
import numpy as np
from PIL import Image
from ultralytics import YOLO

root, model, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
doc = json.load(open(f"{root}/annotations/instances_val2017.json"))
images = sorted(doc["images"], key=lambda i: i["id"])[:limit]
yolo = YOLO(model)
for info in images:
    with Image.open(f"{root}/val2017/{info['file_name']}") as im:
        x = np.asarray(im.convert("RGB"))
    yolo.predict(np.ascontiguousarray(x[:, :, ::-1]), conf=0.001, iou=0.7, max_det=100,
                 verbose=False)
"""


def main() -> None:
    repo = Path(__file__).resolve().parents[1]
    shared = repo.parent / "shared"
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root",
                    default=os.environ.get("BENCH_DATA_ROOT") or str(shared / "data/coco"))
    ap.add_argument("--model", default=str(shared / "models/yolov8n_integer_quant.tflite"))
    ap.add_argument("--limit", type=int, default=79)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--coco-eval", default="pycocotools",
                    choices=["pycocotools", "faster-coco-eval"])
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    env = dict(os.environ, BENCH_PROGRESS="0", YOLO_OFFLINE="1",
               YOLO_CONFIG_DIR=str(tmp / "yolo"), MPLCONFIGDIR=str(tmp / "mpl"))
    run = [sys.executable, "-m", "bench", "run", "--codec", "original", "--metrics", "psnr",
           "--limit", str(args.limit), "--data-root", args.data_root, "--no-progress"]
    subprocess.run([*run, "--run-dir", str(tmp / "coded")], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bare, harness = [], []
    try:
        for i in range(args.repeats):
            shutil.copytree(tmp / "coded", tmp / f"r{i}")
            scoring = [*run, "--run-dir", str(tmp / f"r{i}"), "--task", "detection",
                       "--model", args.model, "--coco-eval", args.coco_eval]
            harness.append(timed_command(scoring, env))
            bare.append(timed_command([sys.executable, "-c", BARE_LOOP, args.data_root,
                                       args.model, str(args.limit)], env))
            print(f"repeat {i}: bare {bare[-1]:.2f} s, harness {harness[-1]:.2f} s", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    b, h = statistics.median(bare), statistics.median(harness)
    print(f"evaluator {args.coco_eval}, images {args.limit}, median bare {b:.2f} s, "
          f"median harness {h:.2f} s")
    print(f"overhead_ratio {h / b:.3f}")


if __name__ == "__main__":
    main()
