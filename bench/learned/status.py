"""Where a recipe's training campaign stands (``bench train --recipe R --status``).

A campaign runs for days, in the background, across sessions and machines. This reads what
the trainer already writes, and nothing else: each codec's checkpoint in the state folder
(step, its sessions with device, precision, start and end steps), the per-step log's age,
the trainer's lock (:mod:`bench.learned.lock`; tested, never kept), and the committed
campaign snapshot and released weights beside the package. From them it says, per codec:
the step of the planned total, the learning rate there and its phase (warm-up, constant,
decay), whether a trainer is at work now (from its lock; for a folder without a lock file,
from the log's age), the pace of the current session and the time left at that pace, and how
far the committed snapshot lags. Nothing is loaded onto a device and no training state is
changed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from bench.learned.lock import holder, who

#: A trainer that has not written its log for this long is taken as not running (it logs a
#: step every few seconds on a CPU; a checkpoint's "running" outlives a killed process).
STALE_LOG_S = 600.0
#: Entropy kinds and the codec names their snapshots and releases carry.
CODECS = {"ggm": "ggm", "gaussian": "gaussian-roi"}


@dataclass(frozen=True)
class CodecStatus:
    """One codec's campaign, as read from its state folder."""

    entropy: str
    folder: Path
    step: int | None
    sessions: list[dict]
    #: modification times (seconds since the epoch) of the checkpoint and the log
    checkpoint_mtime: float | None
    log_mtime: float | None
    snapshot_step: int
    release_step: int
    #: whether a process holds the folder's trainer lock (:mod:`bench.learned.lock`); None
    #: when that cannot be told (no lock file, e.g. a trainer of an older version)
    locked: bool | None = None
    #: what the lock's holder wrote of itself (pid, host, started, command)
    holder: dict | None = None


def session_steps(session: dict) -> int:
    """Steps a session record of a checkpoint took (to its last checkpoint if unfinished)."""
    return session.get("end_step", session["start_step"]) - session["start_step"]


def read_status(recipe, entropy: str, folder: Path) -> CodecStatus:
    """The state of ``entropy``'s run of ``recipe`` (a :class:`~bench.learned.recipe.Recipe`)
    in ``folder``; ``step`` is None when the folder holds no checkpoint yet."""
    from bench.learned import WEIGHTS_DIR
    from bench.learned.checkpoint import CAMPAIGN_DIR, load, steps_of

    ckpt, log = folder / "last.pt", folder / "train.log.jsonl"
    step, sessions, mtime = None, [], None
    if ckpt.is_file():
        blob = load(ckpt)
        step = int(blob["step"])
        sessions = json.loads(blob.get("sessions", "[]"))
        mtime = ckpt.stat().st_mtime
    name = CODECS[entropy]
    try:
        record = holder(folder)
        locked = record is not None
    except (LookupError, OSError):  # no lock file, or an unreadable one: cannot tell
        record, locked = None, None
    return CodecStatus(entropy, folder, step, sessions, mtime,
                       log.stat().st_mtime if log.is_file() else None,
                       steps_of(CAMPAIGN_DIR / f"{name}.pt", recipe.name),
                       steps_of(WEIGHTS_DIR / f"{name}.pt", recipe.name), locked, record)


def phase(recipe, step: int) -> str:
    """The learning-rate phase of ``step``: warm-up, constant (until the decay) or decay."""
    start = int(recipe.decay_start * recipe.steps)
    if recipe.warmup and step < recipe.warmup:
        return f"warm-up to step {recipe.warmup:,}"
    if step < start:
        return f"constant; {recipe.decay} decay from step {start:,}"
    if step >= recipe.steps:
        return "done"
    return f"{recipe.decay} decay since step {start:,}"


def pace(status: CodecStatus) -> tuple[int, float] | None:
    """(steps, seconds) of the latest session up to its last checkpoint, from the session's
    start time and the checkpoint's; None when it cannot be told."""
    if not status.sessions or status.checkpoint_mtime is None:
        return None
    last = status.sessions[-1]
    try:
        started = time.mktime(time.strptime(last["started"], "%Y-%m-%dT%H:%M:%S"))
    except (KeyError, ValueError):
        return None
    seconds = status.checkpoint_mtime - started
    steps = session_steps(last)
    return (steps, seconds) if steps > 0 and seconds > 0 else None


def describe(recipe, status: CodecStatus, now: float | None = None) -> list[str]:
    """Lines for one codec (the first unindented); ages are counted to ``now`` (default:
    the clock)."""
    head = f"{CODECS[status.entropy]} ({status.folder})"
    if status.step is None:
        if status.locked:  # a trainer before its first checkpoint (compiling, warming up)
            return [f"{head}: no checkpoint yet; training now "
                    f"({who(status.holder) or 'its lock is held'})"]
        start = max(status.snapshot_step, status.release_step)
        where = (f"it would start from the committed snapshot at step {start:,}"
                 if status.snapshot_step >= status.release_step and start >= 0 else
                 f"it would warm-start from the released weights (step {start:,} of this "
                 "recipe)" if start >= 0 else "it would start as the recipe says")
        return [f"{head}: no checkpoint yet; {where}"]
    step, total = status.step, recipe.steps
    lines = [f"{head}: step {step:,} of {total:,} ({step / total:.0%}), lr "
             f"{recipe.lr_at(step):.3g} ({phase(recipe, step)})"]
    now = time.time() if now is None else now
    log_age = None if status.log_mtime is None else now - status.log_mtime
    if status.locked is not None:  # the trainer's lock says it exactly
        running = status.locked
    else:
        # a trainer without a lock file (older versions) writes its log every few steps and
        # its checkpoint every few minutes, the final checkpoint after the last log line: a
        # fresh log newer than the checkpoint is a trainer at work
        running = (log_age is not None and log_age < STALE_LOG_S
                   and status.log_mtime >= status.checkpoint_mtime)
    last = status.sessions[-1] if status.sessions else {}
    if running:
        by = who(status.holder)
        state = f"training now ({by + '; ' if by else ''}log written {_ago(log_age)})"
    elif last.get("stopped") == "running":
        state = ("not running: its last session never finished (the process was stopped "
                 f"without a signal); log last written {_ago(log_age)}")
    else:
        state = f"not running; last session ended: {last.get('stopped', 'unknown')}"
    lines.append(f"  {state}; checkpoint written {_ago(now - status.checkpoint_mtime)}")
    measured = pace(status)
    if measured and step < total:
        steps, seconds = measured
        per_h = 3600 * steps / seconds
        lines.append(f"  latest session ({last.get('device', '?')}, "
                     f"{last.get('precision', '?')}): {steps:,} steps in {seconds / 3600:.1f} h "
                     f"= {per_h:,.0f} steps/h; the {total - step:,} left take "
                     f"{(total - step) / per_h:.1f} h at that pace")
    by_device: dict[str, int] = {}
    for s in status.sessions:
        kind = str(s.get("device", "?")).split(":")[0]
        by_device[kind] = by_device.get(kind, 0) + max(0, session_steps(s))
    if by_device:
        count = len(status.sessions)
        lines.append(f"  {count} session{'' if count == 1 else 's'}: " + ", ".join(
            f"{n:,} steps on {k}" for k, n in sorted(by_device.items())))
    if status.snapshot_step >= 0:
        lines.append(f"  committed snapshot at step {status.snapshot_step:,} "
                     f"({step - status.snapshot_step:+,} since)")
    else:
        lines.append("  no committed snapshot of this recipe")
    return lines


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"
