"""Running external programs (ffmpeg, VTM): the one place where bench starts another program.

What :func:`run` guarantees, and why:

* **An argument list, never a shell string**, with stdin closed (``/dev/null``): nothing is
  parsed by a shell and nothing waits for a terminal.
* **Bounded memory.** stdout is collected up to ``max_stdout`` bytes (more is an error: the
  programs bench runs write their pictures to files, and stdout only carries listings).
  Of stderr only the last :data:`STDERR_KEEP` bytes are kept, for the error message; a
  program that writes more than ``max_stderr`` bytes of diagnostics is killed at once.
  A decoder that loops on a corrupt stream does exactly that (ffmpeg's libjxl wrapper writes
  about 8.6 MB/s of "Invalid data" lines on a truncated JPEG XL stream, which used to be
  kept in memory whole until the timeout: 4.8 GB after 60 s).
* **A timeout that kills everything the program started.** The program runs in its own
  session (a new process group), and a timeout, an output limit, or any exception while
  waiting (``KeyboardInterrupt``, a ``SystemExit`` raised by a signal handler) sends SIGKILL
  to that whole group before the error propagates. SIGKILL because a looping ffmpeg ignores
  SIGTERM.
* **The program dies with its parent.** On Linux the child asks the kernel for
  ``PR_SET_PDEATHSIG`` = SIGKILL (prctl(2)), so it is killed when the thread that started it
  dies, even by SIGKILL, which runs no Python cleanup. A new session alone would do the
  opposite: it shields the program from the terminal's signals, and it would run on as an
  orphan. (The kernel sends that signal to the direct child only; ffmpeg and VTM start no
  programs of their own.)
* **Temporary folders that a killed process leaves behind are removed.** :func:`work_dir`
  names each folder ``bench-<pid>-<label>-*``; the first call in a process removes the
  folders of processes that no longer exist (same user only), and folders of the old
  ``bench-<codec>-*`` naming that are more than :data:`LEGACY_DIR_AGE_S` old.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

#: Bytes of a program's stderr kept for its error message (the end of it).
STDERR_KEEP = 64 * 1024
#: Default limit of a program's stderr: more means it is looping on an error; it is killed.
MAX_STDERR_BYTES = 8 * 1024 * 1024
#: Default limit of a program's stdout (bench's programs write their output to files).
MAX_STDOUT_BYTES = 64 * 1024 * 1024

_READ_CHUNK = 64 * 1024


class ProgramError(RuntimeError):
    """An external program failed: it is missing, exited non-zero, timed out or flooded.

    ``argv`` is the command line, ``returncode`` the exit status (None when it was killed
    by bench or never started) and ``stderr`` the end of its stderr as the message shows it.
    """

    def __init__(self, message: str, argv: Sequence[str], returncode: int | None = None,
                 stderr: str = ""):
        super().__init__(message)
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr


class ProgramNotFound(ProgramError):
    """The program does not exist or is not executable."""


class ProgramTimeout(ProgramError):
    """The program ran past its timeout and was killed with its process group."""


class ProgramOutputLimit(ProgramError):
    """The program wrote more than allowed to stdout or stderr and was killed."""


@dataclass(frozen=True)
class Completed:
    """A finished program: exit status, its whole stdout, the tail of its stderr."""

    argv: list[str]
    returncode: int
    stdout: bytes
    stderr: bytes  # the last STDERR_KEEP bytes
    stderr_bytes: int  # how many bytes it wrote to stderr in all


def stderr_tail(stderr: bytes | str | None, lines: int = 12, chars: int = 1500) -> str:
    """The last ``lines`` distinct non-empty lines of a program's stderr (at most ``chars``).

    A line that comes again later is shown once, at its last place, and the number of
    repeats left out is said: a program looping on an error repeats the same few lines.
    """
    if not stderr:
        return "(no stderr)"
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    seen: set[str] = set()
    kept: list[str] = []
    repeats = 0
    for line in reversed(text.strip().splitlines()):
        if not line.strip():
            continue
        if line in seen:
            repeats += 1
            continue
        if len(kept) == lines:
            break
        seen.add(line)
        kept.append(line)
    tail = "\n".join(reversed(kept))
    if repeats:
        tail += f"\n({repeats} repeated lines left out)"
    return tail[-chars:] if tail else "(no stderr)"


# --------------------------------------------------------------------------- dying with the parent

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _load_prctl():
    """libc's prctl(2), or None where there is none (not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                      ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


_PRCTL = _load_prctl()


def die_with_parent(expected_parent: int | None = None) -> bool:
    """Ask the kernel to SIGKILL this process when the thread that created it dies (Linux).

    Called in the child between fork and exec (it survives exec), and usable by any process
    that must not outlive its parent. ``expected_parent`` closes the race where the parent
    died before the request: the process then exits at once. Returns False where the
    platform has no such request.
    """
    if _PRCTL is None:
        return False
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if expected_parent is not None and os.getppid() != expected_parent:
        os._exit(1)
    return True


def _child_setup(parent: int):
    """The preexec function of every program: die with ``parent`` (session set by Popen)."""

    def setup() -> None:
        die_with_parent(parent)

    return setup


def _kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the process group the program leads (it and anything it started).

    Only called before the program is reaped, so its pid, the group's id, cannot have been
    reused by another process.
    """
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            process.kill()


# --------------------------------------------------------------------------- running


def run(
    argv: Sequence[str | os.PathLike],
    *,
    timeout: float,
    cwd: str | os.PathLike | None = None,
    check: bool = True,
    max_stdout: int = MAX_STDOUT_BYTES,
    max_stderr: int = MAX_STDERR_BYTES,
) -> Completed:
    """Run ``argv`` to completion under the guarantees of this module's docstring.

    Raises :class:`ProgramNotFound` when the program cannot be started,
    :class:`ProgramTimeout` after ``timeout`` seconds, :class:`ProgramOutputLimit` when it
    writes more than ``max_stdout`` / ``max_stderr`` bytes, and (with ``check``)
    :class:`ProgramError` when it exits non-zero. The program has always ended when this
    returns or raises; when bench stops it (timeout, output limit, an exception while
    waiting), its whole process group is killed.
    """
    argv = [os.fspath(a) for a in argv]
    program = argv[0]
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_child_setup(os.getpid()) if _PRCTL is not None else None,
        )
    except FileNotFoundError as exc:
        if cwd is not None and exc.filename == os.fspath(cwd):
            raise ProgramError(f"working folder {cwd} does not exist (running {program})",
                               argv) from exc
        raise ProgramNotFound(f"program not found: {program}", argv) from exc
    except PermissionError as exc:
        raise ProgramNotFound(f"program is not executable: {program}", argv) from exc

    start = time.monotonic()
    deadline = start + timeout
    stdout = bytearray()
    err_tail = bytearray()
    err_total = 0
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ, "stdout")
            selector.register(process.stderr, selectors.EVENT_READ, "stderr")
            while selector.get_map():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise subprocess.TimeoutExpired(argv, timeout)
                for key, _ in selector.select(remaining):
                    chunk = os.read(key.fd, _READ_CHUNK)
                    if not chunk:
                        selector.unregister(key.fileobj)
                    elif key.data == "stdout":
                        stdout += chunk
                        if len(stdout) > max_stdout:
                            raise _Limit("stdout", max_stdout)
                    else:
                        err_total += len(chunk)
                        err_tail += chunk
                        if len(err_tail) > 2 * STDERR_KEEP:
                            del err_tail[:-STDERR_KEEP]
                        if err_total > max_stderr:
                            raise _Limit("stderr", max_stderr)
        process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        _kill_group(process)
        _reap(process)
        tail = stderr_tail(_whole_lines(err_tail, err_total))
        raise ProgramTimeout(
            f"{program} timed out after {timeout:g} s and was killed; stderr tail:\n{tail}",
            argv, None, tail,
        ) from None
    except _Limit as limit:
        _kill_group(process)
        _reap(process)
        tail = stderr_tail(_whole_lines(err_tail, err_total))
        raise ProgramOutputLimit(
            f"{program} wrote more than {_mib(limit.limit)} to {limit.stream} in "
            f"{time.monotonic() - start:.1f} s and was killed (a program looping on bad "
            f"input does this); stderr tail:\n{tail}",
            argv, None, tail,
        ) from None
    except BaseException:
        _kill_group(process)
        _reap(process)
        raise
    finally:
        for stream in (process.stdout, process.stderr):
            with contextlib.suppress(OSError):
                stream.close()
    err = _whole_lines(err_tail, err_total)
    if check and process.returncode != 0:
        tail = stderr_tail(err)
        raise ProgramError(
            f"{program} failed with exit code {process.returncode}; stderr tail:\n{tail}",
            argv, process.returncode, tail,
        )
    return Completed(argv, process.returncode, bytes(stdout), err, err_total)


class _Limit(Exception):
    """Internal: one output stream passed its limit."""

    def __init__(self, stream: str, limit: int):
        super().__init__(stream)
        self.stream = stream
        self.limit = limit


def _whole_lines(tail: bytearray, total: int) -> bytes:
    """The last :data:`STDERR_KEEP` bytes of stderr, starting at a line if it was cut."""
    kept = bytes(tail[-STDERR_KEEP:])
    if total > len(kept):
        kept = kept[kept.find(b"\n") + 1 :]
    return kept


def _reap(process: subprocess.Popen) -> None:
    """Collect a killed program's exit status (SIGKILL cannot be ignored, so this is quick)."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def _mib(n: int) -> str:
    """``8 MiB`` / ``64 KiB`` / ``100 bytes``: a byte count for a message."""
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    if n >= 1 << 10 and n % (1 << 10) == 0:
        return f"{n >> 10} KiB"
    return f"{n} bytes"


# --------------------------------------------------------------------------- temporary folders

#: Folders of the old naming (``bench-<codec>-XXXXXXXX``, no pid) older than this are removed.
LEGACY_DIR_AGE_S = 24 * 3600
_LEGACY_LABELS = ("vvc", "hevc", "av1", "jpeg2000", "webp", "jpegxl", "vtm")
_DIR_RE = re.compile(r"^bench-(\d+)-[A-Za-z0-9_.]+-[A-Za-z0-9_]+$")
_LEGACY_RE = re.compile(r"^bench-(" + "|".join(_LEGACY_LABELS) + r")-[a-z0-9_]{8}$")
_swept_in: int | None = None  # pid of the process that has swept (fork-safe)


def _alive(pid: int) -> bool:
    """Whether a process with this pid exists (possibly another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_dirs(parent: str | os.PathLike | None = None) -> list[Path]:
    """Remove the work folders of dead bench processes in ``parent`` (default: the temp dir).

    Only folders owned by this user are touched, never symlinks: ``bench-<pid>-*`` whose
    process is gone, and old-style ``bench-<codec>-*`` (no pid) more than
    :data:`LEGACY_DIR_AGE_S` old. Returns the folders removed.
    """
    root = Path(parent if parent is not None else tempfile.gettempdir())
    removed = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        match = _DIR_RE.match(entry.name)
        legacy = _LEGACY_RE.match(entry.name)
        if not (match or legacy):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not entry.is_dir(follow_symlinks=False) or info.st_uid != os.getuid():
            continue
        if match:
            pid = int(match.group(1))
            if pid == os.getpid() or _alive(pid):
                continue
        elif now - info.st_mtime < LEGACY_DIR_AGE_S:
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        if not os.path.lexists(entry.path):
            removed.append(Path(entry.path))
    return removed


@contextlib.contextmanager
def work_dir(label: str) -> Iterator[Path]:
    """A private temporary folder ``bench-<pid>-<label>-*`` for one external call.

    It is removed on exit; if the process is killed first, the next process to call this
    removes it (:func:`sweep_stale_dirs`).
    """
    global _swept_in
    if _swept_in != os.getpid():
        _swept_in = os.getpid()
        sweep_stale_dirs()
    safe = re.sub(r"[^A-Za-z0-9_.]", "_", label) or "run"
    with tempfile.TemporaryDirectory(prefix=f"bench-{os.getpid()}-{safe}-") as tmp:
        yield Path(tmp)
