"""One trainer per state folder, and whether one is at work there.

Two ``bench train`` processes on one state folder would each resume from the same
checkpoint and overwrite each other's, silently losing one's steps; a recipe's command is
the same every session, so starting it twice is an easy slip. ``bench train`` therefore
holds an advisory lock (``flock``) on ``trainer.lock`` in its folder while it trains, with a
record of who holds it (pid, host, start time, command); code that drives a
:class:`~bench.learned.train.Trainer` itself is not covered. The kernel drops the lock when
the process ends however it ends (even ``kill -9``), so the lock, unlike a log's age, tells a
running trainer from a killed one; ``bench train --status`` tests it with a momentary shared
lock, which a starting trainer waits out (:data:`WAIT_S`).

Where ``fcntl`` is missing (Windows) nothing is locked and :func:`holder` cannot tell; on a
network file system whose ``flock`` is local to each host (some FUSE and CIFS mounts),
trainers on two hosts do not see each other's locks.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

#: The lock file's name in a state folder; it stays after a run (its lock does not).
LOCK_NAME = "trainer.lock"
#: How long a starting trainer retries a taken lock before it gives up: longer than a
#: status's momentary test, far shorter than any training.
WAIT_S = 1.0


def who(record: dict | None) -> str | None:
    """'pid N on HOST since T' from a lock's record; None when it names no process."""
    if not record or not record.get("pid"):
        return None
    return f"pid {record['pid']} on {record.get('host', '?')} since {record.get('started', '?')}"


class FolderBusy(RuntimeError):
    """Another process trains in this state folder; ``record`` is what it wrote of itself."""

    def __init__(self, folder: Path, record: dict):
        self.folder, self.record = folder, record
        pid, host = record.get("pid"), record.get("host", "?")
        holder = who(record)
        holder = f"{holder} ({record.get('command', '?')})" if holder else "another process"
        stop = "SIGTERM" if not pid else f"kill -TERM {pid}" + (
            "" if host == socket.gethostname() else f" on {host}")
        super().__init__(
            f"{folder} is being trained by {holder}; two trainers on one state folder would "
            f"overwrite each other's checkpoints. Let it finish, stop it ({stop}: it "
            "checkpoints and stops), or train in another folder (--out)")


def _read(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 1 << 16)
    try:
        record = json.loads(raw.decode() or "{}")
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return record if isinstance(record, dict) else {}


@contextmanager
def hold(folder: str | os.PathLike, command: str | None = None) -> Iterator[None]:
    """Hold ``folder``'s trainer lock for the block (creating the folder), recording
    ``command`` (default: this process's arguments) as the holder's; raise
    :class:`FolderBusy` when another process still holds it after :data:`WAIT_S`, and
    ``OSError`` when the folder or its lock file cannot be written or locked."""
    folder = Path(folder)
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise FolderBusy(folder, _read(fd)) from None
                time.sleep(0.05)
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                  "command": command or shlex.join(["bench", *sys.argv[1:]])}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(record).encode())
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # a stale record would name a pid that may be reused
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def holder(folder: str | os.PathLike) -> dict | None:
    """The record of the process training in ``folder`` now (``{}`` when it wrote none yet),
    ``None`` when no process holds the lock, or raise :class:`LookupError` when it cannot be
    told (no lock file: no trainer of this version has run there; or no ``fcntl``) and
    ``OSError`` when the file cannot be read. Writes nothing: the file is opened read-only
    and its lock tested with a momentary shared lock, released at once."""
    path = Path(folder) / LOCK_NAME
    if fcntl is None or not path.is_file():
        raise LookupError(f"no {LOCK_NAME} in {folder}")
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
