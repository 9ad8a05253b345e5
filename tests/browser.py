"""Headless Chromium for tests: load a page, collect its errors and requests, screenshot it.

The system's Chromium (Debian's ``chromium`` package; ``$BENCH_CHROMIUM`` names another
binary) is driven over the Chrome DevTools protocol on one WebSocket (``websocket-client``),
with a fresh profile in a temporary folder, no sandbox (tests run as root in CI), no GPU and
every background service that would reach the network switched off. Nothing is downloaded:
without a browser :func:`find_browser` returns None and the caller skips.

What a :class:`PageResult` holds: every JavaScript exception, ``console.error`` and browser
log entry of level error (a missing file is one), every request the page made (to check it
stays on the file system), the value of a readiness expression and the result of a check
script evaluated in the page.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--no-default-browser-check", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-extensions",
         "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
         "--remote-debugging-port=0")


def find_browser() -> str | None:
    """The Chromium binary to use: ``$BENCH_CHROMIUM``, else the first on PATH, else None."""
    env = os.environ.get("BENCH_CHROMIUM")
    if env:
        return env if Path(env).is_file() else shutil.which(env)
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageResult:
    """What loading one page produced."""

    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    ready: bool = False
    checks: object = None
    height: int = 0


class Browser:
    """One headless Chromium process with one page; use as a context manager."""

    def __init__(self, executable: str, *, width: int = 1400, height: int = 1000,
                 start_timeout: float = 30.0):
        import websocket

        self.profile = Path(tempfile.mkdtemp(prefix="bench-chromium-"))
        self.log = self.profile.with_suffix(".log")  # beside the profile: never a full pipe
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [executable, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + start_timeout
        while not (port_file.is_file() and len(port_file.read_text().splitlines()) >= 2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.log.read_text(errors="replace")[-2000:]
                self.close()
                raise RuntimeError(f"{executable} did not start: {err}")
            time.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}{path}", timeout=60,
                                              suppress_origin=True)
        self._id = 0
        self.events: list[dict] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget",
                                 {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1,
                   "mobile": False}, session=True)

    def call(self, method: str, params: dict | None = None, *, session: bool = False) -> dict:
        """Send one DevTools command and return its result (events seen meanwhile are kept)."""
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        self.ws.send(json.dumps(msg))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (promises awaited)."""
        res = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                             "awaitPromise": True}, session=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expression[:60]}…: {res['exceptionDetails']}")
        return res["result"].get("value")

    def load(self, url: str, *, ready: str = "true", check: str = "null",
             timeout: float = 60.0) -> PageResult:
        """Open ``url``, wait for its load event and for ``ready`` to be true, run
        ``check``; returns the errors, requests and check value."""
        self.events.clear()
        self.call("Page.navigate", {"url": url}, session=True)
        deadline = time.monotonic() + timeout
        loaded = ok = False
        while time.monotonic() < deadline:
            if not loaded:
                loaded = any(e.get("method") == "Page.loadEventFired" for e in self.events)
                if not loaded:
                    self.call("Runtime.evaluate", {"expression": "0"}, session=True)
                    time.sleep(0.05)
                    continue
            ok = bool(self.evaluate(f"!!({ready})"))
            if ok:
                break
            time.sleep(0.1)
        result = PageResult(ready=ok)
        result.checks = self.evaluate(check)
        result.height = int(self.evaluate("document.documentElement.scrollHeight") or 0)
        time.sleep(0.2)  # late errors (a rejected promise after ready) still count
        self.call("Runtime.evaluate", {"expression": "0"}, session=True)
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                result.errors.append("exception: " + str(d.get("exception", {}).get(
                    "description") or d.get("text")))
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                result.errors.append("console.error: " + " ".join(
                    str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                entry = p["entry"]
                result.errors.append(f"log: {entry.get('text')} {entry.get('url', '')}".strip())
            elif m == "Network.requestWillBeSent":
                result.requests.append(p.get("request", {}).get("url", ""))
        return result

    def rect(self, element: str) -> dict:
        """Page coordinates (x, y, width, height in CSS pixels) of the element a JavaScript
        expression gives."""
        return self.evaluate(f"""(() => {{ const e = {element};
            if (!e) throw new Error("no element: " + {json.dumps(element)});
            const r = e.getBoundingClientRect();
            return {{x: r.x + window.scrollX, y: r.y + window.scrollY, width: r.width,
                     height: r.height}}; }})()""")

    def click(self, element: str) -> None:
        """A real mouse click (pressed and released through the input pipeline) at the
        centre of the element a JavaScript expression gives, scrolled into view first."""
        self.evaluate(f"({element}).scrollIntoView({{block: 'center'}})")
        r = self.evaluate(f"""(() => {{ const b = ({element}).getBoundingClientRect();
            return {{x: b.x + b.width / 2, y: b.y + b.height / 2}}; }})()""")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", {"type": kind, "x": r["x"], "y": r["y"],
                                                   "button": "left", "clickCount": 1},
                      session=True)

    def screenshot(self, path: str | Path, *, top: float = 0, height: float | None = None) -> Path:
        """A screenshot of the page, full width, from ``top`` for ``height`` CSS pixels
        (default: to the end of the page): JPEG (quality 85) for a ``.jpg`` path, else PNG."""
        metrics = self.call("Page.getLayoutMetrics", session=True)
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        h = int(min(height or size["height"], size["height"] - top))
        jpeg = Path(path).suffix.lower() in (".jpg", ".jpeg")
        shot = self.call("Page.captureScreenshot", {
            "format": "jpeg" if jpeg else "png", **({"quality": 85} if jpeg else {}),
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": top, "width": size["width"], "height": h, "scale": 1}},
            session=True)
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(shot["data"]))
        return out

    def close(self) -> None:
        """End the browser and remove its profile."""
        ws = getattr(self, "ws", None)
        if ws is not None:
            try:
                self.call("Browser.close")
            except Exception:
                pass
            ws.close()
            self.ws = None
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        try:  # helpers of this browser only: it leads its own process group
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        shutil.rmtree(self.profile, ignore_errors=True)
        self.log.unlink(missing_ok=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
