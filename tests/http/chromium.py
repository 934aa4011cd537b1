"""Debian's `chromium`, headless, driven over the DevTools protocol on a pipe
(`--remote-debugging-pipe`: JSON messages ended by NUL on fds 3 and 4), so a test can
open a page, read its DOM as it updates, and take a screenshot. No websocket library,
no downloaded browser: the real one the machine has, or a skip that says so."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

CANDIDATES = ("chromium", "chromium-browser")
REPLY_TIMEOUT_S = 30.0


def chromium_path() -> str:
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(
        "chromium is not installed: the dashboard is tested in Debian's `chromium` "
        "(apt-get install chromium)"
    )


class Browser:
    """One headless chromium with one page."""

    def __init__(self, width: int = 1280, height: int = 1000) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="bzzz-chromium-"))
        ours_in, theirs_in = os.pipe()  # we write, chromium reads fd 3
        theirs_out, ours_out = os.pipe()  # chromium writes fd 4, we read

        def plumb() -> None:
            os.dup2(ours_in, 3)
            os.dup2(ours_out, 4)
            # `make test` caps the address space of test processes (a soft limit);
            # Chromium reserves tens of GB of it up front and dies under that cap.
            _, hard = resource.getrlimit(resource.RLIMIT_AS)
            resource.setrlimit(resource.RLIMIT_AS, (hard, hard))

        self.proc = subprocess.Popen(
            [
                chromium_path(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--remote-debugging-pipe",
                f"--user-data-dir={self.profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            pass_fds=(3, 4),
            preexec_fn=plumb,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(ours_in)
        os.close(ours_out)
        self._write, self._read = theirs_in, theirs_out
        self._buffer = b""
        self._next = 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        self.page("Page.enable")
        self.page("Runtime.enable")
        self.page(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._next += 1
        ident = self._next
        message: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == ident:
                    if "error" in reply:
                        raise AssertionError(f"{method}: {reply['error']}")
                    return dict(reply.get("result", {}))
                if "method" in reply:
                    self.events.append(reply)
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"chromium did not answer {method}")
            chunk = os.read(self._read, 1 << 16)
            if not chunk:
                raise AssertionError(f"chromium closed its pipe during {method}")
            self._buffer += chunk

    def page(self, method: str, **params: Any) -> dict[str, Any]:
        return self.call(method, self.session, **params)

    def open(self, url: str) -> None:
        """Navigate to `url` and wait until its document has loaded."""
        answer = self.page("Page.navigate", url=url)
        assert not answer.get("errorText"), answer
        address = json.dumps(url.split("#", 1)[0])
        self.wait_for(
            f"document.readyState === 'complete' && location.href.split('#')[0] === {address}"
        )

    def evaluate(self, expression: str) -> Any:
        answer = self.page("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in answer:
            raise AssertionError(f"{expression}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0) -> Any:
        """Evaluate `expression` until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.evaluate(expression)
            except AssertionError:  # the page is not there yet: a moment later
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                text = self.evaluate("document.body ? document.body.innerText : ''")
                raise AssertionError(f"timed out waiting for {expression}; the page:\n{text}")
            time.sleep(0.1)

    def screenshot(self, path: Path) -> Path:
        data = self.page("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data["data"]))
        return path

    def close(self) -> None:
        with contextlib.suppress(AssertionError):
            self.call("Browser.close")
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        os.close(self._write)
        os.close(self._read)
        shutil.rmtree(self.profile, ignore_errors=True)


def artifacts_dir() -> Path:
    """Where screenshots go: $BZZZ_ARTIFACTS, else a folder in the temp dir."""
    where = os.environ.get("BZZZ_ARTIFACTS") or str(Path(tempfile.gettempdir()) / "bzzz-artifacts")
    path = Path(where)
    path.mkdir(parents=True, exist_ok=True)
    return path
