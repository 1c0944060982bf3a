"""The web page in a real browser: headless Chromium, driven over the DevTools protocol
(``--remote-debugging-pipe``: no extra package), loads ``/``, puts an image into the page's own
file input, types a prompt, submits the form and waits for the refine job; the heatmaps, the
mask outline and the refined image must then be shown, loaded, in the results frame.

With ``GREFINE_UPDATE_SCREENSHOTS=1`` the screenshot replaces docs/img/serve.png.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import EXAMPLE, ROOT, ServerProcess

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: .ci/run sets this: there a missing browser is a failure, not a skip
REQUIRED = os.environ.get("GREFINE_REQUIRE_CHROMIUM") == "1"


class DevTools:
    """A minimal DevTools client over the pipe Chromium opens on fds 3 (in) and 4 (out)."""

    def __init__(self, profile: Path) -> None:
        assert CHROMIUM is not None
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # high numbers first, so that the dup2 calls below cannot overwrite one another
        keep = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_chrome_r, from_chrome_w)]

        def pipes() -> None:
            os.dup2(keep[0], 3)
            os.dup2(keep[1], 4)

        flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            "about:blank",
        ]
        self.proc = subprocess.Popen(
            [CHROMIUM, *flags],
            pass_fds=(3, 4),
            preexec_fn=pipes,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for fd in (to_chrome_r, from_chrome_w, *keep):
            os.close(fd)
        self._buffer = b""
        self._next = 0
        self.session: str | None = None

    def call(
        self, method: str, params: dict[str, Any] | None = None, *, timeout: float = 60
    ) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if self.session is not None and not method.startswith("Target."):
            message["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while b"\0" not in self._buffer:
                chunk = os.read(self._from_chrome, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the pipe")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
        raise TimeoutError(method)

    def evaluate(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}
        )
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.2)
        raise TimeoutError(expression)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


CHECK = """(() => {
  const frame = document.getElementById('result'), doc = frame.contentDocument;
  const images = Array.from(doc.images);
  const loaded = images.filter(i => i.complete && i.naturalWidth > 0).map(i => i.alt);
  return JSON.stringify({
    alts: images.map(i => i.alt), loaded: loaded, frame_hidden: frame.hidden,
    progress: document.getElementById('bar').value,
    error: document.getElementById('error').textContent,
    rows: doc.querySelectorAll('table.items > tbody > tr').length});
})()"""


@pytest.mark.skipif(
    CHROMIUM is None and not REQUIRED, reason="chromium is not installed (apt-get install chromium)"
)
def test_upload_through_the_page(server: ServerProcess, tmp_path: Path) -> None:
    assert CHROMIUM is not None, "GREFINE_REQUIRE_CHROMIUM=1 but no chromium on PATH"
    from PIL import Image

    image = tmp_path / "house.png"
    Image.open(EXAMPLE).convert("RGB").resize((224, 168)).save(image)
    browser = DevTools(tmp_path / "profile")
    try:
        target = browser.call("Target.createTarget", {"url": server.url + "/"})["targetId"]
        browser.session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1400, "height": 760, "deviceScaleFactor": 1, "mobile": False},
        )
        browser.call("Emulation.setScrollbarsHidden", {"hidden": True})
        browser.wait_for("document.body && document.body.dataset.state === 'idle'", 60)
        root = browser.call("DOM.getDocument")["root"]["nodeId"]
        node = browser.call("DOM.querySelector", {"nodeId": root, "selector": "#image"})["nodeId"]
        browser.call("DOM.setFileInputFiles", {"nodeId": node, "files": [str(image)]})
        browser.evaluate("document.getElementById('prompt').value = 'a red house with a blue door'")
        browser.evaluate("document.getElementById('recipe').value = 'tiny'")
        browser.evaluate("document.getElementById('go').click()")
        state = browser.wait_for(
            "['done', 'error'].includes(document.body.dataset.state) && document.body.dataset.state", 180
        )
        seen = json.loads(browser.evaluate(CHECK))
        assert state == "done", seen
        assert not seen["frame_hidden"] and seen["progress"] == 1 and seen["rows"] == 1 and not seen["error"]
        for what in (
            "house.png input",
            "house.png refined",
            "house.png PQ-Map",
            "house.png AQ-Map",
            "house.png mask",
            "colour legend",
        ):
            assert what in seen["loaded"], (what, seen)
        assert set(seen["loaded"]) == set(seen["alts"])  # every image of the results is shown
        shot = base64.b64decode(browser.call("Page.captureScreenshot", {"format": "png"})["data"])
    finally:
        browser.close()
    (tmp_path / "serve.png").write_bytes(shot)
    with Image.open(tmp_path / "serve.png") as picture:
        assert picture.size == (1400, 760)
    if os.environ.get("GREFINE_UPDATE_SCREENSHOTS") == "1":  # refresh the picture in docs/serve.md
        shutil.copy(tmp_path / "serve.png", ROOT / "docs" / "img" / "serve.png")
