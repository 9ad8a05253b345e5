"""The options that choose who does the coding work: one definition for ``bench run`` and
``bench check``, which both hand their work to :class:`bench.pipeline.Pipeline`."""

from __future__ import annotations

import argparse


def add_executor_options(p: argparse.ArgumentParser) -> None:
    """Add ``--jobs``, ``--executor`` and ``--ray-address`` to a command's parser."""
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="worker processes (default: 1); with --executor ray, Ray workers "
                   "(and the CPUs of the local Ray instance started when there is no cluster)")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="who codes: local, a process pool on this machine (default), or ray, "
                   "Ray actors on the cluster at --ray-address / $RAY_ADDRESS (else a local "
                   "Ray instance); results are identical, only this process writes the store "
                   "(pip install -e \".[ray]\")")
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="--executor ray: the cluster to join (default: $RAY_ADDRESS, else a "
                   "local instance)")


def executor_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with those options, or None."""
    if args.jobs < 1:
        return f"--jobs must be at least 1, got {args.jobs}"
    if args.ray_address and args.executor != "ray":
        return "--ray-address needs --executor ray"
    return None
