"""The image (deploy/Dockerfile) is not built here (no Docker engine), so what can be checked without building it
is checked: every package pyproject.toml installs is copied in, LightGBM's runtime library is installed, and the
service user can write its run directory."""

from __future__ import annotations

import re
import tomllib

from config.settings import PROJECT_ROOT

DOCKERFILE = (PROJECT_ROOT / "deploy" / "Dockerfile").read_text()


def test_every_package_pyproject_installs_is_copied_into_the_image() -> None:
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = set(re.findall(r"^COPY (\w+) \1$", DOCKERFILE, flags=re.MULTILINE))
    assert packages - copied == set(), "missing from the image (pip install . would leave them out)"
    assert copied - packages == set(), "copied but not installed"


def test_lightgbm_has_its_openmp_runtime_and_the_service_user_owns_its_run_directory() -> None:
    assert re.search(r"apt-get install[^\n]*\blibgomp1\b", DOCKERFILE)
    assert "ENV ENGAGE_RUN_DIR=/var/lib/engage" in DOCKERFILE
    user = re.search(r"^USER (\w+)$", DOCKERFILE, flags=re.MULTILINE)
    assert user is not None and user.group(1) != "root" and user.group(1) != "nobody"
    assert re.search(rf"useradd [^\n]*--home-dir /var/lib/engage --create-home {user.group(1)}\b", DOCKERFILE)
