"""Training speed of the learned ROI codecs: release 1's step against the fast path.

Side by side in one process, the same network (the release-2 ``ggm`` network, warm-started
from the package's weights), the same batches and the same quantization noise, steps
interleaved so that a busy machine slows both sides alike:

* **release-1 step**: float32, contiguous (NCHW) tensors, as release 1 trained;
* **fast step**: the transforms under bfloat16 autocast (this CPU's AVX-512/AMX bf16 units)
  with channels-last tensors, and the forward pass compiled with ``torch.compile`` (its first
  step, which compiles, is reported apart and left out of the median); the entropy models
  (incomplete gamma, CDFs) stay in float32.

Both run with the same thread count (``--threads``, default 1: the training campaign runs
the two codecs side by side with one thread each). Printed: the median seconds per step of
each side, the mean loss over the first ``--steps`` steps of each side (the fast side must
stay within 3 % of float32), and last ``speedup <x>`` (release-1 seconds / fast seconds).

Run: ``python benchmarks/train_speed.py [--steps 300] [--threads 1] [--entropy ggm]``.

Where the fast step's time goes (2026-12-07, ``torch.profiler`` over 5 compiled steps of
recipe ``release-7``'s ``ggm``, one thread, beside the two campaign trainers: 0.8 s a step):
convolution backward 43 %, convolution forward 16 %, the compiled element-wise graphs (GDN,
SFT, the GG likelihood's six ``igammac`` calls) 34 %, Adam 2 %. The largest single op is the
backward of the synthesis's 64² → 128² transposed convolution (about 90 ms a step). Tried
then and not worth changing: that layer as a 3×3 convolution to 4·C channels and a pixel
shuffle (the same function) is no faster under bf16 (310 against 319 ms forward + backward)
and slower in float32; the whole step in NCHW instead of channels-last: 0.844 against 0.845
s a step (40 interleaved steps). The step is bound by the convolutions' arithmetic.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time

import torch

from bench.learned.recipe import get_recipe
from bench.learned.train import TrainConfig, Trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300, help="steps per side (default 300)")
    ap.add_argument("--threads", type=int, default=1, help="threads per side (default 1)")
    ap.add_argument("--entropy", default="ggm", choices=("ggm", "gaussian"))
    ap.add_argument("--recipe", default="release-2", help="batches and network of this recipe")
    ap.add_argument("--no-compile", action="store_true", help="fast side without torch.compile")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    fast = dataclasses.replace(get_recipe(args.recipe), ema=0.0, autocast=True,
                               channels_last=True, warmup=0)
    plain = dataclasses.replace(fast, autocast=False, channels_last=False)
    sides = {}
    with tempfile.TemporaryDirectory() as tmp:
        compiled = not args.no_compile
        for name, recipe, comp in (
                ("release-1 step (fp32, NCHW)", plain, False),
                ("fast step (bf16 autocast, channels-last" + (", compiled)" if compiled else ")"),
                 fast, compiled)):
            cfg = TrainConfig(entropy=args.entropy, out=f"{tmp}/{len(sides)}", progress=False,
                              threads=args.threads, compile=comp)
            sides[name] = {"trainer": Trainer(recipe, cfg), "seconds": [], "loss": []}
        print(f"{args.steps} steps per side of {plain.batch_size}×{plain.crop}² "
              f"({args.recipe} batches), {args.entropy}, {args.threads} thread(s), "
              f"torch {torch.__version__}")
        for step in range(args.steps):
            for side in sides.values():
                t0 = time.perf_counter()
                record = side["trainer"].train_step()
                side["seconds"].append(time.perf_counter() - t0)
                side["loss"].append(record["loss"])
            if (step + 1) % 50 == 0:
                print(f"  step {step + 1}: " + ", ".join(
                    f"{statistics.mean(s['loss'][-50:]):.4f}" for s in sides.values()),
                    flush=True)
    (base_name, base), (fast_name, quick) = sides.items()
    for name, side in sides.items():
        median = statistics.median(side["seconds"][5:] or side["seconds"])
        side["median"] = median
        print(f"{name}: first step {side['seconds'][0]:.1f} s; {median:.3f} s/step "
              f"({1 / median:.2f} steps/s), mean loss over "
              f"{len(side['loss'])} steps {statistics.mean(side['loss']):.4f}, last 50 "
              f"{statistics.mean(side['loss'][-50:]):.4f}")
    rel = statistics.mean(quick["loss"]) / statistics.mean(base["loss"]) - 1
    rel_last = statistics.mean(quick["loss"][-50:]) / statistics.mean(base["loss"][-50:]) - 1
    print(f"loss difference (fast vs fp32): mean {100 * rel:+.2f} %, last 50 steps "
          f"{100 * rel_last:+.2f} % (target within ±3 %)")
    print(f"speedup {base['median'] / quick['median']:.3f}")


if __name__ == "__main__":
    main()
