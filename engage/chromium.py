"""A headless Chromium on loopback, for the SDK bench and the browser tests: check the binaries, start and stop it
with every process it spawned accounted for, and serve an ASGI app for it to load.

Debian's `chromium` and `chromium-driver` (installed by deploy/install-system-deps.sh) are driven with Selenium
(a dev dependency, like the benchmarks that use it); the browser may reach 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WINDOW = (1280, 900)
INSTALL_HINT = "run deploy/install-system-deps.sh (or `make system-deps`)"


class HarnessError(RuntimeError):
    """The browser harness itself cannot run (a binary or npm missing, a version mismatch); says what to do."""


# --- the binaries ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Binaries:
    chromium: Path
    chromedriver: Path
    version: str  # e.g. "156.0.8078.114", the same for both


def _version(argv: Sequence[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError) as error:
        raise HarnessError(f"{' '.join(argv)} failed: {error}; {INSTALL_HINT}") from error
    found = re.search(r"\b(\d+\.\d+\.\d+\.\d+)\b", out)
    if found is None:
        raise HarnessError(f"no version in the output of {' '.join(argv)}: {out!r}")
    return found.group(1)


def check_binaries(chromium: Path = CHROMIUM, chromedriver: Path = CHROMEDRIVER) -> Binaries:
    """Both binaries present and of the same build: a mismatched driver fails later with an obscure error."""
    for path in (chromium, chromedriver):
        if not os.access(path, os.X_OK):
            raise HarnessError(f"{path} is missing: {INSTALL_HINT}")
    browser, driver = _version([str(chromium), "--version"]), _version([str(chromedriver), "--version"])
    if browser != driver:
        raise HarnessError(f"chromium {browser} and chromedriver {driver} differ: {INSTALL_HINT}")
    return Binaries(chromium, chromedriver, browser)


# --- starting and stopping the browser ------------------------------------------------------------------------


def chrome_options(binaries: Binaries, profile_dir: Path, dead_end_port: int) -> Options:
    """Headless, 1280x900, its own profile, console logged, and no way out of loopback.

    Every host name but localhost resolves to nothing, and every non-loopback connection (an IP literal too)
    goes to a "proxy" on 127.0.0.1:dead_end_port, which refuses it, so a page that reaches for a CDN fails
    visibly instead of passing on a machine that has the internet. Loopback itself never uses a proxy.
    """
    options = Options()
    options.binary_location = str(binaries.chromium)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # the tests run as root, where Chromium's sandbox cannot start
        "--disable-gpu",
        "--disable-dev-shm-usage",  # containers often have a 64 MB /dev/shm
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        f"--user-data-dir={profile_dir}",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1",
        f"--proxy-server=http://127.0.0.1:{dead_end_port}",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--lang=en-GB",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return options


def start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat, None once the process is gone or a zombie (dead, awaiting its reaper).

    With the PID it names one process, never a later one that reused the PID.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def _descendants(root: int) -> dict[int, str]:
    """PID -> start time of every live process under root (read from /proc's parent links)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found: dict[int, str] = {}
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            started = start_time(child)
            if started is not None:
                found[child] = started
                stack.append(child)
    return found


@dataclass
class Browser:
    """The driver plus the PIDs we started, so teardown can make sure none of them outlives the test."""

    driver: WebDriver
    driver_pid: int
    seconds_to_start: float
    dead_end: socket.socket | None  # bound, never listening: what every non-loopback connection runs into
    _pids: dict[int, str] = field(default_factory=dict)

    def processes(self) -> dict[int, str]:
        """PID -> start time of chromedriver and everything under it (browser, renderers, GPU, zygotes) now."""
        return {self.driver_pid: start_time(self.driver_pid) or "", **_descendants(self.driver_pid)}

    def stop(self, grace: float = 5.0) -> list[int]:
        """driver.quit(), then SIGKILL whatever we started that is still there after grace; returns those PIDs.

        Chromium's zygotes exit a moment after the browser does, so they get the grace period first.
        """
        self._pids.update(self.processes())
        with contextlib.suppress(Exception):  # a crashed browser still has to be cleaned up below
            self.driver.quit()
        deadline = time.monotonic() + grace
        while (left := self.left()) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.dead_end is not None:
            self.dead_end.close()
        return left

    def left(self) -> list[int]:
        """The PIDs we recorded whose process still runs."""
        return [pid for pid, started in self._pids.items() if started and start_time(pid) == started]


def start_browser(binaries: Binaries, profile_dir: Path, *, dead_end_port: int | None = None) -> Browser:
    """A new Chromium with its own profile; dead_end_port replaces the refusing port (a test that watches it)."""
    began = time.monotonic()
    dead_end = None
    if dead_end_port is None:  # held, not listening: connections to it are refused for as long as the browser runs
        dead_end = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        dead_end.bind(("127.0.0.1", 0))
        dead_end_port = dead_end.getsockname()[1]
    service = Service(executable_path=str(binaries.chromedriver))  # its default: local connections only
    try:
        driver = webdriver.Chrome(service=service, options=chrome_options(binaries, profile_dir, dead_end_port))
    except BaseException:
        if dead_end is not None:
            dead_end.close()
        raise
    driver.set_script_timeout(60)
    driver.set_page_load_timeout(30)
    assert service.process is not None
    browser = Browser(driver, service.process.pid, time.monotonic() - began, dead_end)
    browser._pids.update(browser.processes())
    return browser


# --- serving an app to the browser ----------------------------------------------------------------------------


@contextlib.contextmanager
def serve_asgi(app: Any, *, start_timeout: float = 30.0) -> Iterator[str]:
    """Runs an ASGI app with uvicorn in a thread on a free 127.0.0.1 port; yields its base URL, then stops it.

    The socket is bound here and handed to uvicorn, so no other process can take the port in between.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # An open event stream (the live dashboard) never ends by itself: give connections 2 s, then cancel them.
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as error:  # reported to the caller below, not lost in the thread
            failure.append(error)

    thread = threading.Thread(target=run, name=f"asgi-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if failure or not thread.is_alive():
            sock.close()
            raise HarnessError(f"the ASGI app did not start on 127.0.0.1:{port}: {failure[:1]!r}")
        if time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise HarnessError(f"the ASGI app did not start on 127.0.0.1:{port} within {start_timeout} s")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        if thread.is_alive():
            raise HarnessError(f"the ASGI server on 127.0.0.1:{port} did not stop within 30 s")
