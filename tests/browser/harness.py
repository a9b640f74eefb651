"""A real headless Chromium for the page tests: start and stop it, serve an ASGI app, and check what a person would.

Debian's `chromium` and `chromium-driver` (installed by deploy/install-system-deps.sh) are driven with Selenium;
the browser may reach 127.0.0.1 only. Starting, stopping and serving are engage/chromium.py's (re-exported here).
axe-core comes from the npm registry at the version pinned in tests/browser/package-lock.json, installed once
into the cache dir, so no 500 KB script lives in the repository.
"""

from __future__ import annotations

import base64
import fcntl
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from selenium.webdriver.chromium.webdriver import ChromiumDriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from config.settings import PROJECT_ROOT

# Starting and stopping the browser and serving an app to it live in the package (the SDK bench uses them too).
from engage.chromium import (
    CHROMEDRIVER,
    CHROMIUM,
    INSTALL_HINT,
    WINDOW,
    Binaries,
    Browser,
    HarnessError,
    check_binaries,
    chrome_options,
    serve_asgi,
    start_browser,
    start_time,
)

__all__ = [
    "CHROMEDRIVER",
    "CHROMIUM",
    "WINDOW",
    "Binaries",
    "Browser",
    "HarnessError",
    "axe",
    "axe_violations",
    "check_binaries",
    "chrome_options",
    "clear_artefacts",
    "console_errors",
    "describe",
    "install_axe",
    "screenshot",
    "serve_asgi",
    "start_browser",
    "start_time",
    "tab_through",
]

HERE = Path(__file__).resolve().parent
ARTEFACTS = HERE / "artefacts"

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
            raise HarnessError(f"npm is not on PATH; it installs axe-core for the browser tests: {INSTALL_HINT}")
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
