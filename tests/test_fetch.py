"""``bench.data.fetch`` against a real HTTP server on 127.0.0.1 serving archives built here.

No mocks: the server is :mod:`http.server` in a thread (with ``Range`` support, and switches
to cut a response in half or to ignore ``Range``), the archives are real zips of real JPEGs
and a valid COCO instances file. A guard refuses any connection to a non-loopback address.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import socket
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from bench.data.fetch import FetchError, RemoteFile, coco_manifest, fetch_coco

SPLIT = "val2017"
IMAGE_ZIP = "val2017.zip"
ANN_ZIP = "annotations_trainval2017.zip"
TIMEOUT = 5.0
IMAGES = [(139, 40, 30), (285, 32, 48), (632, 24, 24)]  # (id, width, height)


# --------------------------------------------------------------------------- server


class ArchiveServer:
    """Serves ``files`` by name; records every request as ``(name, Range header)``."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.truncate_next: set[str] = set()  # names whose next response stops halfway
        self.ignore_range = False
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def remote(self, name: str, *, md5: str | None = None, size: int | None = None) -> RemoteFile:
        """The manifest entry for a served file (its true size and MD5 unless overridden)."""
        body = self.files[name]
        return RemoteFile(
            url=self.url(name),
            name=name,
            size=len(body) if size is None else size,
            md5=hashlib.md5(body).hexdigest() if md5 is None else md5,
        )

    def manifest(self) -> list[RemoteFile]:
        return [self.remote(IMAGE_ZIP), self.remote(ANN_ZIP)]

    def requested(self, name: str) -> list[str | None]:
        """The ``Range`` headers of the requests for ``name``, in order."""
        with self.lock:
            return [rng for got, rng in self.requests if got == name]


def _handler_for(state: ArchiveServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            name = self.path.lstrip("/")
            rng = self.headers.get("Range")
            with state.lock:
                state.requests.append((name, rng))
                body = state.files.get(name)
                truncate = name in state.truncate_next
                state.truncate_next.discard(name)
            if body is None:
                self.send_error(404)
                return
            start = 0
            if rng and not state.ignore_range:
                start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            payload = body[start:]
            self.send_header("Content-Type", "application/zip")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if truncate:  # promise everything, send half, hang up
                payload = payload[: len(payload) // 2]
                self.close_connection = True
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    return Handler


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy, and any connection to a host other than 127.0.0.1 fails the test."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    real = socket.create_connection

    def guarded(address, *args, **kwargs):
        assert address[0] == "127.0.0.1", f"test tried to reach {address[0]}"
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)


@pytest.fixture
def server() -> Iterator[ArchiveServer]:
    state = ArchiveServer()
    state.files = {IMAGE_ZIP: _image_zip(), ANN_ZIP: _annotation_zip()}
    state.thread.start()
    try:
        yield state
    finally:
        state.httpd.shutdown()
        state.httpd.server_close()
        state.thread.join(timeout=5)


# --------------------------------------------------------------------------- archives


def _jpeg(width: int, height: int, seed: int) -> bytes:
    image = Image.new("RGB", (width, height), (seed * 37 % 256, seed * 91 % 256, 128))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def _image_zip(extra: dict[str, bytes] | None = None) -> bytes:
    members = {f"{SPLIT}/{i:012d}.jpg": _jpeg(w, h, i) for i, w, h in IMAGES}
    return _zip({**members, **(extra or {})})


def _instances() -> dict:
    images = [
        {"id": i, "file_name": f"{i:012d}.jpg", "width": w, "height": h} for i, w, h in IMAGES
    ]
    annotations = [
        {
            "id": n + 1,
            "image_id": i,
            "category_id": 1,
            "bbox": [2.0, 2.0, 10.0, 8.0],
            "area": 80.0,
            "iscrowd": 0,
            "segmentation": [[2.0, 2.0, 12.0, 2.0, 12.0, 10.0, 2.0, 10.0]],
        }
        for n, (i, _, _) in enumerate(IMAGES)
    ]
    categories = [{"id": 1, "name": "person", "supercategory": "person"}]
    return {"images": images, "annotations": annotations, "categories": categories}


def _annotation_zip(with_instances: bool = True) -> bytes:
    members = {"annotations/captions_val2017.json": b'{"annotations": []}'}
    if with_instances:
        members[f"annotations/instances_{SPLIT}.json"] = json.dumps(_instances()).encode()
    return _zip(members)


def _fetch(root: Path, server: ArchiveServer, **kwargs) -> Path:
    kwargs.setdefault("files", server.manifest())
    return fetch_coco(root, SPLIT, progress=False, timeout=TIMEOUT, **kwargs)


def _assert_no_dataset(root: Path) -> None:
    """Nothing of the data set, and no staging folder, is left under ``root``."""
    assert not (root / SPLIT).exists()
    assert not (root / "annotations" / f"instances_{SPLIT}.json").exists()
    assert not list(root.glob(".tmp-fetch-*"))


# --------------------------------------------------------------------------- tests


def test_fetch_gives_official_layout_that_pycocotools_loads(tmp_path, server):
    from pycocotools.coco import COCO

    root = tmp_path / "coco"
    assert fetch_coco(root, SPLIT, files=server.manifest(), timeout=TIMEOUT) == root

    assert sorted(p.name for p in (root / SPLIT).glob("*.jpg")) == [
        f"{i:012d}.jpg" for i, _, _ in IMAGES
    ]
    coco = COCO(str(root / "annotations" / f"instances_{SPLIT}.json"))
    assert sorted(coco.getImgIds()) == [i for i, _, _ in IMAGES]
    for info in coco.loadImgs(coco.getImgIds()):
        with Image.open(root / SPLIT / info["file_name"]) as image:
            assert image.size == (info["width"], info["height"])
    # Only the instances file of the split is installed; the archives are kept.
    assert [p.name for p in (root / "annotations").iterdir()] == [f"instances_{SPLIT}.json"]
    assert sorted(p.name for p in (root / ".downloads").iterdir()) == [ANN_ZIP, IMAGE_ZIP]
    assert not list(root.glob(".tmp-fetch-*"))


def test_rerun_downloads_nothing(tmp_path, server):
    root = tmp_path / "coco"
    _fetch(root, server)
    assert len(server.requests) == 2
    _fetch(root, server)
    assert len(server.requests) == 2


def test_verified_archives_are_reused_to_reinstall(tmp_path, server):
    root = tmp_path / "coco"
    _fetch(root, server)
    for image in (root / SPLIT).iterdir():
        image.unlink()
    (root / SPLIT).rmdir()

    _fetch(root, server)

    assert len(server.requests) == 2
    assert len(list((root / SPLIT).glob("*.jpg"))) == len(IMAGES)


def test_truncated_download_errors_then_resumes(tmp_path, server):
    root = tmp_path / "coco"
    server.truncate_next.add(IMAGE_ZIP)

    with pytest.raises(FetchError, match=re.escape(IMAGE_ZIP)) as err:
        _fetch(root, server)

    assert "incomplete" in str(err.value) and "resume" in str(err.value)
    _assert_no_dataset(root)
    part = root / ".downloads" / f"{IMAGE_ZIP}.part"
    half = len(server.files[IMAGE_ZIP]) // 2
    assert part.stat().st_size == half
    assert not (root / ".downloads" / IMAGE_ZIP).exists()

    _fetch(root, server)

    assert server.requested(IMAGE_ZIP) == [None, f"bytes={half}-"]
    assert len(list((root / SPLIT).glob("*.jpg"))) == len(IMAGES)
    assert not part.exists()


def test_server_ignoring_range_restarts_from_zero(tmp_path, server):
    root = tmp_path / "coco"
    downloads = root / ".downloads"
    downloads.mkdir(parents=True)
    (downloads / f"{IMAGE_ZIP}.part").write_bytes(b"\0" * 100)  # junk a resume would keep
    server.ignore_range = True

    _fetch(root, server)

    assert server.requested(IMAGE_ZIP) == ["bytes=100-"]
    assert (downloads / IMAGE_ZIP).read_bytes() == server.files[IMAGE_ZIP]


def test_corrupted_archive_is_removed_with_clear_error(tmp_path, server):
    root = tmp_path / "coco"
    good = server.remote(IMAGE_ZIP)
    body = bytearray(server.files[IMAGE_ZIP])
    body[len(body) // 2] ^= 0xFF  # same size, one flipped byte
    server.files[IMAGE_ZIP] = bytes(body)

    with pytest.raises(FetchError, match=f"checksum mismatch for {re.escape(IMAGE_ZIP)}"):
        _fetch(root, server, files=[good, server.remote(ANN_ZIP)])

    assert list((root / ".downloads").iterdir()) == []
    _assert_no_dataset(root)


def test_size_reported_by_server_must_match_manifest(tmp_path, server):
    root = tmp_path / "coco"
    wrong = server.remote(IMAGE_ZIP, size=len(server.files[IMAGE_ZIP]) + 1)

    with pytest.raises(FetchError, match="manifest expects"):
        _fetch(root, server, files=[wrong, server.remote(ANN_ZIP)])

    _assert_no_dataset(root)


@pytest.mark.parametrize("member", ["../evil.txt", "/tmp/evil.txt", f"{SPLIT}/../../evil.txt"])
def test_zip_slip_member_is_refused(tmp_path, server, member):
    root = tmp_path / "data" / "coco"
    server.files[IMAGE_ZIP] = _image_zip({member: b"gotcha"})

    with pytest.raises(FetchError, match="unsafe member"):
        _fetch(root, server)

    _assert_no_dataset(root)
    assert not list(tmp_path.rglob("evil.txt"))


def test_archive_without_instances_installs_nothing(tmp_path, server):
    root = tmp_path / "coco"
    server.files[ANN_ZIP] = _annotation_zip(with_instances=False)

    with pytest.raises(FetchError, match=f"instances_{SPLIT}.json"):
        _fetch(root, server)

    _assert_no_dataset(root)


def test_existing_different_target_is_an_error(tmp_path, server):
    root = tmp_path / "coco"
    (root / SPLIT).mkdir(parents=True)
    (root / SPLIT / f"{IMAGES[0][0]:012d}.jpg").write_bytes(b"not the image")

    with pytest.raises(FetchError, match="already exists but does not match"):
        _fetch(root, server)

    assert not (root / "annotations" / f"instances_{SPLIT}.json").exists()
    assert not list(root.glob(".tmp-fetch-*"))


def test_existing_identical_annotations_are_kept(tmp_path, server):
    root = tmp_path / "coco"
    target = root / "annotations" / f"instances_{SPLIT}.json"
    target.parent.mkdir(parents=True)
    target.write_bytes(json.dumps(_instances()).encode())

    _fetch(root, server)

    assert len(list((root / SPLIT).glob("*.jpg"))) == len(IMAGES)


def test_http_error_names_url(tmp_path, server):
    root = tmp_path / "coco"
    missing = RemoteFile(server.url("nope.zip"), "nope.zip", 10, "0" * 32)

    with pytest.raises(FetchError, match=r"nope\.zip.*HTTP 404"):
        _fetch(root, server, files=[missing])

    _assert_no_dataset(root)


def test_unknown_split_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="train2017, val2017"):
        coco_manifest("test2017")
    with pytest.raises(ValueError, match="unknown COCO split 'val2014'"):
        fetch_coco(tmp_path, "val2014", files=[], progress=False)


def test_manifest_lists_official_archives():
    val = coco_manifest("val2017")
    assert [f.url for f in val] == [
        "http://images.cocodataset.org/zips/val2017.zip",
        "http://images.cocodataset.org/annotations/annotations_trainval2017.zip",
    ]
    assert [(f.name, f.size, f.md5) for f in val] == [
        ("val2017.zip", 815585330, "442b8da7639aecaf257c1dceb8ba8c80"),
        ("annotations_trainval2017.zip", 252907541, "f4bbac642086de4f52a3fdda2de5fa2c"),
    ]
    train = coco_manifest("train2017")
    assert train[0].url == "http://images.cocodataset.org/zips/train2017.zip"
    assert train[1] == val[1]


def test_file_system_error_is_a_fetch_error_and_leaves_nothing(tmp_path, server):
    # A member name longer than the file system allows (ENAMETOOLONG): a real OSError while
    # unpacking, which must reach the user as a FetchError naming what was being done.
    root = tmp_path / "coco"
    server.files[IMAGE_ZIP] = _image_zip({f"{SPLIT}/{'a' * 300}.jpg": _jpeg(8, 8, 1)})

    with pytest.raises(FetchError, match="file-system error while unpacking"):
        _fetch(root, server)

    _assert_no_dataset(root)
    assert (root / ".downloads" / IMAGE_ZIP).is_file()  # the verified download is kept


def test_leftover_staging_of_a_killed_fetch_is_removed(tmp_path, server):
    root = tmp_path / "coco"
    leftover = root / ".tmp-fetch-killed"
    (leftover / SPLIT).mkdir(parents=True)
    (leftover / SPLIT / "half.jpg").write_bytes(b"\xff\xd8")

    _fetch(root, server)

    assert not leftover.exists()
    assert len(list((root / SPLIT).glob("*.jpg"))) == len(IMAGES)


def test_second_fetch_into_the_same_root_is_refused(tmp_path, server):
    fcntl = pytest.importorskip("fcntl")
    root = tmp_path / "coco"
    root.mkdir()
    with open(root / ".fetch.lock", "a+b") as held:  # what a running fetch holds
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        with pytest.raises(FetchError, match="another `bench data fetch`"):
            _fetch(root, server)
    assert server.requests == []  # refused before any download
    _fetch(root, server)  # the lock released: it goes ahead
    assert (root / SPLIT).is_dir()
