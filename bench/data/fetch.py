"""Download the official COCO 2017 archives and unpack them into the official layout.

``fetch_coco(root, "val2017")`` leaves ``<root>/val2017/*.jpg`` and
``<root>/annotations/instances_val2017.json`` (``train2017`` likewise), the layout that
:mod:`bench.data.coco` reads. It is built to be safe to interrupt and to re-run:

* Each archive streams into ``<download_dir>/<name>.part``; a re-run resumes a partial
  file with an HTTP ``Range`` request (a server that ignores ``Range`` is handled by
  starting again from zero). Only a file whose size and MD5 match the manifest is renamed
  to its final name, so a final-named archive is always a verified one and is not
  downloaded again. A corrupted download is deleted; a truncated one is kept for resuming.
* Archives are unpacked into a temporary directory inside ``root`` and each expected item
  is then moved into place with :func:`os.replace`, which is atomic on one file system.
  A failure at any step leaves no half-written data set behind, and the temporary
  directory is removed; one left by a killed process (``SIGKILL`` runs no cleanup) is
  removed by the next fetch into the same root.
* One fetch at a time per root: a second one into the same root fails at once with a
  :class:`FetchError` instead of writing into the same partial download (a POSIX file
  lock on ``<root>/.fetch.lock``; on a system without :mod:`fcntl` there is no lock and
  no removal of leftover temporary directories).
* A file-system error (disk full, no permission, a name too long) is a
  :class:`FetchError` naming the path, like every other failure.
* Only the split's image folder and ``annotations/instances_<split>.json`` are installed.
  Other members of the annotations archive (captions, person keypoints) are not kept; the
  archives themselves stay in ``download_dir`` (default ``<root>/.downloads``) so another
  split or a re-install needs no download; delete that folder to reclaim the space.
* When both targets of the split already exist the fetch does nothing: the fetcher only
  ever creates them complete, by rename. Delete them to fetch again.

Only the standard library (:mod:`urllib`, :mod:`zipfile`) and tqdm are used.
"""

from __future__ import annotations

import contextlib
import errno
import filecmp
import hashlib
import http.client
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from tqdm import tqdm

try:
    import fcntl
except ImportError:  # not POSIX: no lock (module docstring)
    fcntl = None

CHUNK_BYTES = 1 << 20
"""Bytes read from the network or disk at a time."""

_COCO_HOST = "http://images.cocodataset.org"
_USER_AGENT = "roibench-fetch/0.1 (+urllib)"


@dataclass(frozen=True)
class RemoteFile:
    """One archive to download: where it lives, what to call it, and how to verify it.

    ``size`` (bytes) and ``md5`` (lower-case hex) are checked after the download, so a
    corrupted or truncated transfer is never unpacked.
    """

    url: str
    name: str
    size: int
    md5: str


class FetchError(RuntimeError):
    """A download or unpack failed; the message names the file or URL and what to do next."""


# Sizes and MD5s of the official archives. The MD5s are the ones published in widely used
# download scripts (e.g. PaddleDetection's COCO reader test, the R torchvision COCO dataset,
# MLPerf/MLCommons checksum lists); the sizes are the Content-Length the server reports
# (wget logs and several download manifests agree). Cross-checked in more than one
# independent source each, not re-measured here (no access to the host from this machine).
_IMAGE_ARCHIVES: dict[str, RemoteFile] = {
    "val2017": RemoteFile(
        url=f"{_COCO_HOST}/zips/val2017.zip",
        name="val2017.zip",
        size=815_585_330,
        md5="442b8da7639aecaf257c1dceb8ba8c80",
    ),
    "train2017": RemoteFile(
        url=f"{_COCO_HOST}/zips/train2017.zip",
        name="train2017.zip",
        size=19_336_861_798,
        md5="cced6f7f71b7629ddf16f17bbcfab6b2",
    ),
}
_ANNOTATIONS_2017 = RemoteFile(
    url=f"{_COCO_HOST}/annotations/annotations_trainval2017.zip",
    name="annotations_trainval2017.zip",
    size=252_907_541,
    md5="f4bbac642086de4f52a3fdda2de5fa2c",
)


def known_splits() -> list[str]:
    """The splits :func:`coco_manifest` and :func:`fetch_coco` know, sorted."""
    return sorted(_IMAGE_ARCHIVES)


def coco_manifest(split: str) -> list[RemoteFile]:
    """The official archives that make up ``split``: its images, then the annotations.

    Raises :class:`ValueError` for an unknown split, listing the known ones.
    """
    _check_split(split)
    return [_IMAGE_ARCHIVES[split], _ANNOTATIONS_2017]


def expected_items(split: str) -> list[PurePosixPath]:
    """The paths, relative to the root, that a fetch of ``split`` installs."""
    return [PurePosixPath(split), PurePosixPath("annotations", f"instances_{split}.json")]


def fetch_coco(
    root: Path,
    split: str = "val2017",
    *,
    files: list[RemoteFile] | None = None,
    download_dir: Path | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download, verify and unpack COCO ``split`` under ``root``; return ``root``.

    ``files`` replaces the official manifest (a mirror, or a test server); together they must
    contain ``<split>/`` and ``annotations/instances_<split>.json``. ``download_dir``
    (default ``<root>/.downloads``) holds the archives and partial downloads. ``progress``
    shows a tqdm byte bar per download; ``timeout`` (seconds) bounds each network wait.

    Raises :class:`ValueError` for an unknown split and :class:`FetchError` for anything
    that goes wrong on the way; neither leaves a half-written data set behind.
    """
    _check_split(split)
    root = Path(root)
    if _installed(root, split):
        return root
    remotes = coco_manifest(split) if files is None else list(files)
    download_dir = root / ".downloads" if download_dir is None else Path(download_dir)
    with _file_errors(f"preparing {download_dir}"):
        root.mkdir(parents=True, exist_ok=True)
        download_dir.mkdir(parents=True, exist_ok=True)
    with _only_fetch(root):
        _remove_leftover_staging(root)
        archives = [
            download(remote, download_dir, progress=progress, timeout=timeout)
            for remote in remotes
        ]
        install(root, split, archives)
    return root


@contextlib.contextmanager
def _file_errors(doing: str) -> Iterator[None]:
    """Turn an :class:`OSError` into a :class:`FetchError` that says what was being done."""
    try:
        yield
    except FetchError:
        raise
    except OSError as err:
        hint = ("free some space there (or choose another --data-root)"
                if err.errno == errno.ENOSPC else "fix the cause")
        raise FetchError(f"file-system error while {doing}: {err}; {hint}, then run the "
                         "command again (verified and partial downloads are kept)") from err


@contextlib.contextmanager
def _only_fetch(root: Path) -> Iterator[None]:
    """Hold ``<root>/.fetch.lock`` exclusively, or fail at once if another fetch holds it."""
    if fcntl is None:
        yield
        return
    with _file_errors(f"opening the lock file in {root}"):
        handle = open(root / ".fetch.lock", "a+b")  # noqa: SIM115 (held across the yield)
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FetchError(
                f"another `bench data fetch` is writing into {root}; wait for it to finish "
                "(or stop it), then run the command again") from None
        yield  # the lock goes with the file's closing


def _remove_leftover_staging(root: Path) -> None:
    """Delete temporary directories left by a fetch that was killed (caller holds the lock)."""
    if fcntl is None:
        return  # without the lock a leftover may be a running fetch's
    for leftover in root.glob(".tmp-fetch-*"):
        shutil.rmtree(leftover, ignore_errors=True)


# --------------------------------------------------------------------------- download


def download(
    remote: RemoteFile, download_dir: Path, *, progress: bool = True, timeout: float = 60.0
) -> Path:
    """Make ``<download_dir>/<remote.name>`` a verified copy of ``remote``; return its path.

    A verified file already there is reused; a ``.part`` file is resumed.
    """
    with _file_errors(f"downloading {remote.name} into {download_dir}"):
        final = download_dir / remote.name
        if final.exists():
            if _matches(final, remote):
                return final
            final.unlink()  # stale or damaged since it was verified: fetch it again
        part = download_dir / f"{remote.name}.part"
        offset = part.stat().st_size if part.exists() else 0
        if offset > remote.size:
            part.unlink()
            offset = 0
        if offset < remote.size:
            _transfer(remote, part, offset, progress=progress, timeout=timeout)
        _verify(part, remote)
        os.replace(part, final)
        return final


def _transfer(
    remote: RemoteFile, part: Path, offset: int, *, progress: bool, timeout: float
) -> None:
    """Append the bytes of ``remote`` from ``offset`` on to ``part``, or restart at zero."""
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urlopen(Request(remote.url, headers=headers), timeout=timeout)
    except HTTPError as err:
        if err.code == 416 and offset:  # the server has fewer bytes than the partial file
            part.unlink()
            raise FetchError(
                f"{remote.url} refused to resume {remote.name} at byte {offset} (HTTP 416); "
                "the partial file was removed, run the command again"
            ) from err
        raise FetchError(
            f"download of {remote.name} from {remote.url} failed: HTTP {err.code} {err.reason}; "
            "check the URL, then run the command again"
        ) from err
    except (URLError, http.client.HTTPException, OSError) as err:
        raise FetchError(
            f"could not connect to {remote.url} to download {remote.name}: {_reason(err)}; "
            "check the network connection, then run the command again"
        ) from err
    with response:
        offset = _start_offset(remote, response, offset)
        expected_end = _expected_end(remote, response, offset)
        mode = "ab" if offset else "wb"
        with open(part, mode) as sink, _bar(remote, offset, progress) as bar:
            writing = False
            try:
                for chunk in _chunks(response):
                    writing = True
                    sink.write(chunk)
                    writing = False
                    bar.update(len(chunk))
                    if sink.tell() > remote.size:
                        break
            except (http.client.HTTPException, OSError) as err:
                if writing:  # the disk, not the network: download() names it
                    raise
                sink.flush()
                raise _truncated(remote, part, f"the transfer broke off ({_reason(err)})") from err
    got = part.stat().st_size
    if got > remote.size:
        part.unlink()
        raise FetchError(
            f"{remote.url} sent more than the expected {remote.size} bytes for {remote.name}; "
            "the file on the server is not the one in the manifest. The download was removed"
        )
    if got < expected_end:
        raise _truncated(remote, part, f"the connection closed after {got} of {expected_end} bytes")


def _start_offset(remote: RemoteFile, response: http.client.HTTPResponse, offset: int) -> int:
    """Where the response body starts in the file: ``offset`` for a 206, 0 for a 200."""
    status = response.status
    if status == 200:
        return 0  # no Range asked, or the server ignored it: start again from zero
    if status == 206 and offset:
        start = _content_range_start(response.headers.get("Content-Range", ""))
        if start == offset:
            return offset
        raise FetchError(
            f"{remote.url} answered the resume request for {remote.name} at byte {offset} "
            f"with data from byte {start}; delete {remote.name}.part and run the command again"
        )
    raise FetchError(f"unexpected HTTP status {status} from {remote.url} for {remote.name}")


def _content_range_start(value: str) -> int | None:
    """The first byte of a ``Content-Range: bytes START-END/TOTAL`` header, if it parses."""
    match = re.match(r"\s*bytes\s+(\d+)-\d+/(?:\d+|\*)\s*$", value)
    return int(match.group(1)) if match else None


def _expected_end(remote: RemoteFile, response: http.client.HTTPResponse, offset: int) -> int:
    """The file size this response should complete; reject a server-side size mismatch early."""
    length = response.headers.get("Content-Length")
    if length is None or not length.strip().isdigit():
        return remote.size
    end = offset + int(length)
    if end != remote.size:
        raise FetchError(
            f"{remote.url} reports {end} bytes for {remote.name} but the manifest expects "
            f"{remote.size}; the file on the server is not the one in the manifest. Check the URL "
            "(a mirror may serve another version)"
        )
    return end


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    """Successive non-empty reads of ``stream`` until it ends."""
    while chunk := stream.read(CHUNK_BYTES):
        yield chunk


def _bar(remote: RemoteFile, offset: int, progress: bool) -> tqdm:
    """A byte progress bar that starts at ``offset`` (the part already on disk)."""
    return tqdm(
        total=remote.size,
        initial=offset,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=remote.name,
        disable=not progress,
        leave=False,
    )


def _truncated(remote: RemoteFile, part: Path, what: str) -> FetchError:
    """The error for an incomplete transfer, whose partial file is kept for resuming."""
    return FetchError(
        f"download of {remote.name} from {remote.url} is incomplete: {what}. "
        f"The partial file {part} is kept; run the command again to resume"
    )


def _reason(err: BaseException) -> str:
    """A short description of a network error."""
    reason = getattr(err, "reason", None)
    return str(reason if reason is not None else err) or type(err).__name__


# --------------------------------------------------------------------------- verify


def md5sum(path: Path) -> str:
    """The MD5 of a file as lower-case hex, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as source:
        for chunk in _chunks(source):
            digest.update(chunk)
    return digest.hexdigest()


def _matches(path: Path, remote: RemoteFile) -> bool:
    """Whether ``path`` has the size and MD5 of ``remote``."""
    return path.stat().st_size == remote.size and md5sum(path) == remote.md5.lower()


def _verify(path: Path, remote: RemoteFile) -> None:
    """Check size and MD5 of a complete download; delete it and raise on a mismatch."""
    size = path.stat().st_size
    if size != remote.size:
        path.unlink()
        raise FetchError(
            f"size mismatch for {remote.name}: expected {remote.size} bytes, got {size}; "
            "the download was removed, run the command again"
        )
    got = md5sum(path)
    if got != remote.md5.lower():
        path.unlink()
        raise FetchError(
            f"checksum mismatch for {remote.name}: expected MD5 {remote.md5}, got {got}; "
            f"the download from {remote.url} was corrupted and removed, run the command again"
        )


# --------------------------------------------------------------------------- unpack


def install(root: Path, split: str, archives: list[Path]) -> None:
    """Unpack the split's items from ``archives`` and move them into ``root`` atomically.

    Items that already exist with the same content are left alone; an existing item that
    differs (incomplete, or another version) is an error and nothing is moved.
    """
    items = expected_items(split)
    with _file_errors(f"unpacking into {root}"):
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".tmp-fetch-", dir=root))
        try:
            for archive in archives:
                _extract(archive, staging, items)
            _check_staged(staging, items, archives)
            to_move = [item for item in items if _needs_move(staging, root, item)]
            _move_into_place(staging, root, to_move)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _installed(root: Path, split: str) -> bool:
    """Whether every item of ``split`` is already under ``root``."""
    image_dir, annotations = (root / item for item in expected_items(split))
    return image_dir.is_dir() and annotations.is_file()


def _safe_member(name: str) -> PurePosixPath:
    """A zip member name as a relative path, refusing absolute paths and ``..`` (zip-slip)."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or re.match(r"^[A-Za-z]:", name):
        raise ValueError(name)
    return path


def _extract(archive: Path, staging: Path, items: list[PurePosixPath]) -> None:
    """Extract the members of ``archive`` that belong to ``items`` into ``staging``.

    Every member name is checked first, so an archive with an unsafe member writes nothing.
    """
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            for member in members:
                try:
                    _safe_member(member.filename)
                except ValueError:
                    raise FetchError(
                        f"archive {archive} contains the unsafe member {member.filename!r} "
                        "(absolute path or '..'); refusing to unpack it. Delete the archive "
                        "and check where it comes from"
                    ) from None
            for member in members:
                if _wanted(_safe_member(member.filename), items):
                    zf.extract(member, staging)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as err:
        raise FetchError(
            f"archive {archive} cannot be unpacked ({err}); delete it and run the command again"
        ) from err


def _wanted(path: PurePosixPath, items: list[PurePosixPath]) -> bool:
    """Whether a member path is one of ``items`` or lies inside one."""
    return any(path == item or item in path.parents for item in items)


def _check_staged(staging: Path, items: list[PurePosixPath], archives: list[Path]) -> None:
    """Raise unless every expected item was found in the archives."""
    missing = [str(item) for item in items if not (staging / item).exists()]
    if missing:
        names = ", ".join(archive.name for archive in archives)
        raise FetchError(
            f"the archives ({names}) do not contain {', '.join(missing)}; they are not the "
            "COCO archives for this split. Check the download URLs and run the command again"
        )


def _needs_move(staging: Path, root: Path, item: PurePosixPath) -> bool:
    """False when ``root/item`` already holds the staged content; raise if it differs."""
    target = root / item
    if not target.exists():
        return True
    if _same_content(staging / item, target):
        return False
    raise FetchError(
        f"{target} already exists but does not match the downloaded archive (incomplete or "
        "another version); move it away, then run the command again"
    )


def _same_content(staged: Path, target: Path) -> bool:
    """Whether ``target`` has every file of ``staged``: byte-equal for a file, same sizes
    for the files of a folder (comparing every image byte by byte would cost a full read)."""
    if staged.is_file():
        return target.is_file() and filecmp.cmp(staged, target, shallow=False)
    if not target.is_dir():
        return False
    for path in staged.rglob("*"):
        if path.is_file():
            other = target / path.relative_to(staged)
            if not other.is_file() or other.stat().st_size != path.stat().st_size:
                return False
    return True


def _move_into_place(staging: Path, root: Path, items: list[PurePosixPath]) -> None:
    """Rename each staged item to its place; undo the renames done so far if one fails."""
    moved: list[Path] = []
    try:
        for item in items:
            target = root / item
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / item, target)
            moved.append(target)
    except OSError as err:
        for target in moved:
            _remove(target)
        raise FetchError(f"could not move the unpacked data into {root}: {err}") from err


def _remove(path: Path) -> None:
    """Delete a file or a folder tree, ignoring errors."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _check_split(split: str) -> None:
    """Raise :class:`ValueError` naming the known splits unless ``split`` is one."""
    if split not in _IMAGE_ARCHIVES:
        raise ValueError(f"unknown COCO split {split!r}; known splits: {', '.join(known_splits())}")
