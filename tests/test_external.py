"""bench.external: every external program runs bounded, and never outlives bench.

Real programs only: ffmpeg (imageio-ffmpeg's), ``sh``, ``yes``, ``sleep`` and Python
children. Checked: a program that floods stderr is killed at the limit and only the tail is
kept (memory measured in a fresh process); stdout is bounded; a timeout or an interrupt kills
the program's whole process group; a program whose Python parent is SIGKILLed is killed by
the kernel; the work folders of dead processes are removed, and only those.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import external

REPO = Path(__file__).resolve().parents[1]


def script(folder: Path, body: str, name: str = "prog") -> Path:
    """An executable ``sh`` script standing in for an external program."""
    path = folder / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


def proc_state(pid: int) -> str | None:
    """The process's state letter from /proc (None when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def is_gone(pid: int, wait: float = 5.0) -> bool:
    """Whether ``pid`` is gone or a zombie (dead, not yet reaped by init) within ``wait`` s."""
    end = time.monotonic() + wait
    while time.monotonic() < end:
        if proc_state(pid) in (None, "Z", "X"):
            return True
        time.sleep(0.05)
    return False


def children_of(pid: int) -> list[int]:
    """Live children of ``pid`` according to /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == pid and state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")


# --------------------------------------------------------------------------- bounded output


def test_stderr_flood_is_killed_at_the_limit(tmp_path):
    flood = script(tmp_path, "exec yes 'Decoding error: Invalid data' >&2")
    start = time.monotonic()
    with pytest.raises(external.ProgramOutputLimit) as info:
        external.run([flood], timeout=60)
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert "wrote more than 8 MiB to stderr" in message and str(flood) in message
    assert "Decoding error: Invalid data" in message and "repeated lines left out" in message
    assert len(info.value.stderr) <= 1500


def test_stdout_is_bounded(tmp_path):
    chatter = script(tmp_path, "exec yes")
    with pytest.raises(external.ProgramOutputLimit, match="more than 1 MiB to stdout"):
        external.run([chatter], timeout=60, max_stdout=1 << 20)


def test_only_the_tail_of_stderr_is_held_in_memory(tmp_path):
    """200 MB through stderr: the caller's peak memory grows by far less than that."""
    writer = script(tmp_path, "head -c 200000000 /dev/zero | tr '\\0' 'x' >&2\n"
                              "echo >&2\necho 'the last line' >&2\nexit 4")
    code = (
        "import resource, sys\n"
        "from bench import external\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        f"    external.run([{str(writer)!r}], timeout=120, max_stderr=1 << 30)\n"
        "except external.ProgramError as exc:\n"
        "    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "    print((after - before) // 1024, exc.returncode, 'the last line' in str(exc))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, timeout=180, check=True).stdout.split()
    grown_mib, returncode, has_tail = int(out[0]), int(out[1]), out[2] == "True"
    assert returncode == 4 and has_tail
    assert grown_mib < 50, f"peak memory grew by {grown_mib} MiB for 200 MB of stderr"


def test_completed_program_reports_how_much_stderr_it_wrote(tmp_path):
    prog = script(tmp_path, "head -c 300000 /dev/zero | tr '\\0' 'y' >&2\nprintf done")
    done = external.run([prog], timeout=60)
    assert done.stdout == b"done" and done.returncode == 0
    assert done.stderr_bytes == 300000 and len(done.stderr) <= external.STDERR_KEEP


# --------------------------------------------------------------------------- killing


@linux_only
def test_timeout_kills_the_whole_process_group(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    prog = script(tmp_path, f"sleep 300 &\necho $! > {pidfile}\necho waiting >&2\nsleep 300")
    start = time.monotonic()
    with pytest.raises(external.ProgramTimeout, match="timed out after 1 s") as info:
        external.run([prog], timeout=1)
    assert time.monotonic() - start < 5 and "waiting" in str(info.value)
    assert is_gone(int(pidfile.read_text())), "the program's own child survived the timeout"


@linux_only
def test_an_interrupt_while_waiting_kills_the_program(tmp_path):
    pidfile = tmp_path / "prog.pid"
    prog = script(tmp_path, f"echo $$ > {pidfile}\nexec sleep 300")

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.alarm(1)
        with pytest.raises(KeyboardInterrupt):
            external.run([prog], timeout=60)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert is_gone(int(pidfile.read_text()))


CHILD = """
import sys, time
from bench import external
ffmpeg = sys.argv[1]
with external.work_dir("vvc") as tmp:
    print(tmp, flush=True)
    external.run([ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
                  "-f", "lavfi", "-i", "nullsrc=s=16x16:d=600", "-f", "null", "-"],
                 timeout=600)
"""


@linux_only
def test_a_killed_parent_takes_its_program_and_leaves_a_folder_that_is_swept(tmp_path):
    """SIGKILL the Python process while ffmpeg runs: the kernel kills ffmpeg too."""
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    # a temp folder of its own: in the shared one, any other process's first external call
    # (another test worker's) would sweep the dead parent's folder before this test looks
    parent = subprocess.Popen([sys.executable, "-c", CHILD, ffmpeg], cwd=REPO,
                              env={**os.environ, "TMPDIR": str(tmp_path)},
                              stdout=subprocess.PIPE, text=True)
    try:
        work = Path(parent.stdout.readline().strip())
        deadline = time.monotonic() + 30
        kids: list[int] = []
        while not kids and time.monotonic() < deadline:
            kids = children_of(parent.pid)
            time.sleep(0.05)
        assert kids, "ffmpeg did not start"
        (program,) = kids
        assert "ffmpeg" in Path(f"/proc/{program}/cmdline").read_bytes().decode()
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        assert is_gone(program), "ffmpeg outlived its SIGKILLed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
    assert work.parent == tmp_path
    assert work.is_dir() and work.name.startswith(f"bench-{parent.pid}-vvc-")
    assert work in external.sweep_stale_dirs(work.parent)
    assert not work.exists()


def test_die_with_parent_is_available_on_linux():
    assert external.die_with_parent() is sys.platform.startswith("linux")


# --------------------------------------------------------------------------- work folders


def test_sweep_removes_only_folders_of_dead_processes(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(gone.stdout)
    assert not external._alive(dead_pid)
    dead = tmp_path / f"bench-{dead_pid}-vvc-abc123_x"
    live = tmp_path / "bench-1-vvc-abc123_y"  # pid 1 always exists
    mine = tmp_path / f"bench-{os.getpid()}-jpegxl-abc123_z"
    old_legacy = tmp_path / "bench-vtm-abcd1234"
    new_legacy = tmp_path / "bench-hevc-abcd5678"
    other = tmp_path / "bench-check-abcd1234"  # bench check's own folders are not ours
    for folder in (dead, live, mine, old_legacy, new_legacy, other):
        folder.mkdir()
        (folder / "in.yuv").write_bytes(b"x")
    two_days_ago = time.time() - 2 * 24 * 3600
    for folder in (old_legacy, other):
        os.utime(folder, (two_days_ago, two_days_ago))
    target = tmp_path / "keep"
    target.mkdir()
    (tmp_path / f"bench-{dead_pid}-webp-link_xx").symlink_to(target)
    removed = set(external.sweep_stale_dirs(tmp_path))
    assert removed == {dead, old_legacy}
    assert all(f.is_dir() for f in (live, mine, new_legacy, other, target))


def test_work_dir_is_named_for_its_process_and_removed(tmp_path):
    with external.work_dir("gaussian-roi") as folder:
        assert folder.is_dir()
        assert folder.name.startswith(f"bench-{os.getpid()}-gaussian_roi-")
    assert not folder.exists()
