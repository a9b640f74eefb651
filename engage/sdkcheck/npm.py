"""The JS SDK's npm scripts, for the tests and the bench: `npm ci` once per lock file, then `npm test` or a build."""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
from pathlib import Path

from config.settings import PROJECT_ROOT

SDK = PROJECT_ROOT / "sdk" / "js"
BUNDLE = SDK / "dist" / "engage.min.js"
_STAMP = SDK / "node_modules" / ".engage-installed"


class NpmFailed(RuntimeError):
    """An npm step failed (or npm is missing); the message carries npm's own output or what to install."""


def _run(args: list[str], timeout: float) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise NpmFailed("npm is not on PATH: run deploy/install-system-deps.sh (or `make system-deps`)")
    done = subprocess.run([npm, *args], cwd=SDK, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise NpmFailed(f"`npm {' '.join(args)}` in sdk/js failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def ensure_installed() -> None:
    """`npm ci` when package-lock.json changed since the last install (the lock pins versions and hashes)."""
    digest = hashlib.sha256((SDK / "package-lock.json").read_bytes()).hexdigest()
    with (SDK / ".npm-install.lock").open("w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        if _STAMP.is_file() and _STAMP.read_text() == digest:
            return
        _run(["ci", "--no-audit", "--no-fund", "--loglevel=error"], timeout=300)
        _STAMP.write_text(digest)


def npm(*script: str, timeout: float = 180) -> None:
    """``npm <script...>`` in sdk/js after making sure its locked dependencies are installed."""
    ensure_installed()
    _run(list(script), timeout)


def build() -> Path:
    """The browser bundle, built from the current sources."""
    npm("run", "build")
    return BUNDLE
