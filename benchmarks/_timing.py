"""Wall-clock timing of whole commands, shared by the side-by-side benchmark scripts."""

from __future__ import annotations

import subprocess
import time


def timed_command(cmd: list[str], env: dict) -> float:
    """Seconds one command takes; its output is discarded unless it fails.

    A failing command raises RuntimeError with the tail of its stderr, so a broken side of
    a comparison is never timed silently.
    """
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace")[-2000:]
        raise RuntimeError(f"{cmd[:4]}… exited with {proc.returncode}:\n{tail}")
    return seconds
