"""A real headless Chromium for the page tests: start and stop it, serve an ASGI app, and check what a person would.

Debian's `chromium` and `chromium-driver` (installed by deploy/install-system-deps.sh) are driven with Selenium;
the browser may reach 127.0.0.1 only. axe-core comes from the npm registry at the version pinned in
tests/browser/package-lock.json, installed once into the cache dir, so no 500 KB script lives in the repository.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chromium.webdriver import ChromiumDriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from config.settings import PROJECT_ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
HERE = Path(__file__).resolve().parent
ARTEFACTS = HERE / "artefacts"
WINDOW = (1280, 900)
_INSTALL_HINT = "run deploy/install-system-deps.sh (or `make system-deps`)"


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
        raise HarnessError(f"{' '.join(argv)} failed: {error}; {_INSTALL_HINT}") from error
    found = re.search(r"\b(\d+\.\d+\.\d+\.\d+)\b", out)
    if found is None:
        raise HarnessError(f"no version in the output of {' '.join(argv)}: {out!r}")
    return found.group(1)


def check_binaries(chromium: Path = CHROMIUM, chromedriver: Path = CHROMEDRIVER) -> Binaries:
    """Both binaries present and of the same build: a mismatched driver fails later with an obscure error."""
    for path in (chromium, chromedriver):
        if not os.access(path, os.X_OK):
            raise HarnessError(f"{path} is missing: {_INSTALL_HINT}")
    browser, driver = _version([str(chromium), "--version"]), _version([str(chromedriver), "--version"])
    if browser != driver:
        raise HarnessError(f"chromium {browser} and chromedriver {driver} differ: {_INSTALL_HINT}")
    return Binaries(chromium, chromedriver, browser)


# --- axe-core from the npm registry ---------------------------------------------------------------------------


def _cache_dir() -> Path:
    return Path(os.environ.get("ENGAGE_CACHE_DIR", PROJECT_ROOT / ".cache"))


def install_axe(cache_dir: Path | None = None) -> Path:
    """`npm ci` of tests/browser's lock file into <cache>/npm, once per lock file; returns axe.min.js.

    The lock file pins the version and its sha512, which npm checks. A file lock keeps two sessions from
    installing into the same directory at once.
    """
    prefix = (cache_dir or _cache_dir()) / "npm"
    script = prefix / "node_modules" / "axe-core" / "axe.min.js"
    lock = (HERE / "package-lock.json").read_bytes()
    prefix.mkdir(parents=True, exist_ok=True)
    with (prefix / ".install.lock").open("w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        installed_lock = prefix / "package-lock.json"
        if script.is_file() and installed_lock.is_file() and installed_lock.read_bytes() == lock:
            return script
        npm = shutil.which("npm")
        if npm is None:
            raise HarnessError(f"npm is not on PATH; it installs axe-core for the browser tests: {_INSTALL_HINT}")
        shutil.copyfile(HERE / "package.json", prefix / "package.json")
        installed_lock.write_bytes(lock)
        argv = [npm, "ci", "--prefix", str(prefix), "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0 or not script.is_file():
            installed_lock.unlink(missing_ok=True)  # so the next run tries again
            raise HarnessError(f"`{' '.join(argv)}` failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return script


@lru_cache(maxsize=1)
def axe_source() -> str:
    return install_axe().read_text(encoding="utf-8")


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


# --- what the tests check -------------------------------------------------------------------------------------


def console_errors(driver: WebDriver) -> list[dict[str, Any]]:
    """SEVERE browser-console entries since the last call (reading the log empties it): errors, failed loads."""
    if not isinstance(driver, ChromiumDriver):
        raise HarnessError("the console log is read through Chromium's goog:loggingPrefs")
    entries: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return [entry for entry in entries if entry.get("level") == "SEVERE"]


@dataclass(frozen=True)
class Violation:
    rule: str  # axe rule id, e.g. "image-alt"
    impact: str
    help: str
    help_url: str
    targets: tuple[str, ...]  # CSS selectors of the offending nodes

    def __str__(self) -> str:
        return f"{self.rule} ({self.impact}): {self.help} -> {', '.join(self.targets)}"


def describe(violations: Sequence[Violation]) -> str:
    """One line per violation, for an assertion message a person can act on."""
    return "\n".join(str(v) for v in violations) or "no violations"


_RUN_AXE = """
const done = arguments[arguments.length - 1];
axe.run(document, {resultTypes: ['violations']})
  .then(result => done({violations: result.violations}))
  .catch(error => done({error: String(error && error.stack || error)}));
"""


def axe_violations(driver: WebDriver, impacts: Sequence[str] = ("serious", "critical")) -> list[Violation]:
    """Runs axe-core on the current page; the violations of the given impacts, in axe's order."""
    if not driver.execute_script("return typeof window.axe === 'object';"):
        driver.execute_script(axe_source())
    result = driver.execute_async_script(_RUN_AXE)
    if "error" in result:
        raise HarnessError(f"axe.run failed on {driver.current_url}: {result['error']}")
    found = []
    for item in result["violations"]:
        if item.get("impact") not in impacts:
            continue
        targets = tuple(" ".join(map(str, node["target"])) for node in item["nodes"])
        found.append(Violation(item["id"], item["impact"], item["help"], item["helpUrl"], targets))
    return found


def axe(driver: WebDriver) -> list[Violation]:
    """The serious and critical violations: what every page must have none of (the contract's name)."""
    return axe_violations(driver)


def _test_dir_name() -> str:
    current = os.environ.get("PYTEST_CURRENT_TEST", "outside-a-test").split(" ")[0]
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", current.split("::", 1)[-1])


def clear_artefacts() -> Path:
    """Empties the current test's artefact folder, so what is there after a run is from that run."""
    folder = ARTEFACTS / _test_dir_name()
    shutil.rmtree(folder, ignore_errors=True)
    return folder


def screenshot(driver: WebDriver, name: str, *, full_page: bool = False) -> Path:
    """A PNG under tests/browser/artefacts/<test name>/<name>.png (gitignored), kept after the run.

    The viewport by default; full_page captures the whole document (a long table), through Chromium's DevTools.
    """
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"screenshot name {name!r}: letters, digits, '.', '_' and '-' only")
    folder = ARTEFACTS / _test_dir_name()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    if full_page:
        if not isinstance(driver, ChromiumDriver):
            raise HarnessError("a full-page screenshot needs Chromium's DevTools")
        size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"captureBeyondViewport": True, "clip": clip})
        path.write_bytes(base64.b64decode(shot["data"]))
    elif not driver.save_screenshot(str(path)):
        raise HarnessError(f"the browser did not write the screenshot {path}")
    return path


@dataclass(frozen=True)
class Focused:
    """The element that has keyboard focus after one more Tab."""

    tag: str
    id: str
    text: str  # aria-label, else visible text, else value/name
    outline_visible: bool  # a focus indicator is drawn (outline or box-shadow)

    @property
    def key(self) -> str:
        """`tag#id` or `tag:text`: what a test compares a tab order with."""
        return f"{self.tag}#{self.id}" if self.id else f"{self.tag}:{self.text}"


_ACTIVE = """
const el = document.activeElement;
if (!el || el === document.body || el === document.documentElement) return null;
const style = getComputedStyle(el);
const outline = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0;
const text = (el.getAttribute('aria-label') || el.innerText || el.value || el.name || '').trim().slice(0, 80);
return {tag: el.tagName.toLowerCase(), id: el.id || '', text: text,
        outline: outline || style.boxShadow !== 'none'};
"""


def tab_through(driver: WebDriver, n: int) -> list[Focused | None]:
    """Presses Tab n times from where focus is (the top, right after a load); None where focus left the page."""
    order: list[Focused | None] = []
    for _ in range(n):
        ActionChains(driver).send_keys(Keys.TAB).perform()
        info = driver.execute_script(_ACTIVE)
        order.append(None if info is None else Focused(info["tag"], info["id"], info["text"], info["outline"]))
    return order


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
