"""The --html page in a real headless browser (Debian's chromium, driven over the DevTools protocol on a pipe:
no driver, no extra package): it loads with no console errors, has one timeline column per window and a
subtitle track, and a real mouse click on a segment or on the timeline seeks the video.

Skipped only when no chromium is installed (.ci/run installs it). Set VIVIT_TIMELINE_SCREENSHOT=FILE.png to
also save the page as a PNG (how docs/timeline.png was made).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.test_timeline import STITCH, write_stitched
from vivitcli.cli import app

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


class Browser:
    """chromium --headless with --remote-debugging-pipe: JSON messages ending in NUL on fds 3 (in) and 4 (out)."""

    def __init__(self, profile: Path):
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def fds():  # in the child: the protocol wants exactly fds 3 and 4
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             "--no-first-run", "--no-default-browser-check", "--mute-audio", "--disable-extensions",
             "--allow-file-access-from-files", f"--user-data-dir={profile}", "about:blank"],
            preexec_fn=fds, pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []
        self.session = None

    def send(self, method: str, params: dict | None = None, *, session: bool = True, timeout: float = 30) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._next(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        for i, ev in enumerate(self.events):
            if ev.get("method") == method:
                return self.events.pop(i)
        while True:
            ev = self._next(deadline)
            if ev.get("method") == method:
                return ev
            self.events.append(ev)

    def _next(self, deadline: float) -> dict:
        import select

        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_chrome], [], [], left)[0]:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def open(self, url: str) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 session=False)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": 1000, "height": 1000, "deviceScaleFactor": 1, "mobile": False})
        self.send("Page.navigate", {"url": url})
        self.wait_event("Page.loadEventFired")

    def eval(self, expression: str):
        res = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in res:
            raise RuntimeError(res["exceptionDetails"])
        return res["result"].get("value")

    def click(self, x: float, y: float) -> None:
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})

    def errors(self) -> list[str]:
        out = []
        for ev in self.events:
            m, p = ev.get("method"), ev.get("params", {})
            if m == "Runtime.exceptionThrown":
                out.append(json.dumps(p.get("exceptionDetails", {}))[:300])
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(json.dumps(p.get("args"))[:300])
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append(p["entry"].get("text", "")[:300])
        return out

    def close(self) -> None:
        try:
            self.send("Browser.close", session=False, timeout=5)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


@pytest.fixture
def browser(tmp_path):
    b = Browser(tmp_path / "profile")
    try:
        yield b
    finally:
        b.close()


def _centre(browser: Browser, selector: str) -> tuple[float, float]:
    box = browser.eval(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.scrollIntoView();"
                       " const r = e.getBoundingClientRect();"
                       " return [r.left + r.width / 2, r.top + r.height / 2]; })()")
    return box[0], box[1]


def test_page_loads_and_clicks_seek(tmp_path, browser):
    (tmp_path / "media").mkdir()
    video = write_stitched(tmp_path / "media" / "match.mp4")
    page = tmp_path / "pages" / "match.html"
    page.parent.mkdir()
    r = CliRunner().invoke(app, ["timeline", str(video), "--model", "demo", "-o", str(tmp_path / "w.jsonl"),
                                 "--segments", str(tmp_path / "seg.json"), "--html", str(page), "-q"])
    assert r.exit_code == 0, r.output
    text = page.read_text()
    assert 'src="../media/match.mp4"' in text  # relative link, from the page's folder
    assert "http://" not in text and "https://" not in text  # nothing from the network
    windows = len((tmp_path / "w.jsonl").read_text().splitlines())
    segs = json.loads((tmp_path / "seg.json").read_text())

    browser.open(page.as_uri())
    assert browser.eval("document.querySelectorAll('#timeline rect.win').length") == windows
    assert browser.eval("document.querySelectorAll('#segments li').length") == len(segs) == len(STITCH)
    # The WebVTT track is attached and parsed: one cue per segment.
    cues = browser.eval("new Promise(ok => { const v = document.getElementById('video'); const t = v.textTracks[0];"
                        " t.mode = 'showing'; const n = () => t.cues && t.cues.length;"
                        " const w = (k) => n() || k > 50 ? ok(n()) : setTimeout(() => w(k + 1), 100); w(0); })")
    assert cues == len(segs)

    x, y = _centre(browser, "#segments li:nth-child(2)")
    browser.click(x, y)
    assert browser.eval("document.getElementById('video').currentTime") == pytest.approx(segs[1]["start"], abs=2e-3)

    # A click a quarter of the way along the timeline seeks to a quarter of the span.
    box = browser.eval("(() => { const e = document.getElementById('timeline'); e.scrollIntoView();"
                       " const r = e.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; })()")
    browser.click(box[0] + box[2] / 4, box[1] + box[3] / 2)
    span = segs[-1]["end"] - segs[0]["start"]
    assert browser.eval("document.getElementById('video').currentTime") == pytest.approx(span / 4, abs=span / 100)
    assert browser.errors() == []

    shot = os.environ.get("VIVIT_TIMELINE_SCREENSHOT")
    if shot:
        browser.eval("window.scrollTo(0, 0)")
        x, y = _centre(browser, "#segments li:nth-child(2)")
        browser.click(x, y)
        browser.eval("window.scrollTo(0, 0); document.getElementById('video').controls = false")
        browser.eval("new Promise(ok => { const v = document.getElementById('video');"
                     " const w = (k) => (v.readyState >= 2 && !v.seeking) || k > 100 ? ok(1)"
                     " : setTimeout(() => w(k + 1), 50);"
                     " w(0); })")
        time.sleep(0.3)
        data = browser.send("Page.captureScreenshot", {"format": "png"})["data"]
        from io import BytesIO

        from PIL import Image

        # 64 colours without dithering: the page is flat colour, so the PNG stays small (about 20 kB).
        image = Image.open(BytesIO(base64.b64decode(data))).convert("RGB")
        image.quantize(colors=64, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(shot, optimize=True)
