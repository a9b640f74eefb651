"""Jars from Maven Central for the servers run on the machine's Java (Kafka, ZooKeeper): resolved once by ``mvn``
from a small pom into the cache directory, and reused after."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from deploy.process import ServiceError


def ensure_jars(product: str, pom: Path, version_property: str, version: str, libs: Path) -> Path:
    """Resolve ``pom`` (with ``-D<version_property>=<version>``) into ``libs`` once; return ``libs``."""
    done = libs / ".complete"
    if done.exists():
        return libs
    if shutil.which("mvn") is None:
        raise ServiceError(f"Maven ('mvn') is needed to fetch the {product} jars; install it (apt-get install maven)")
    if shutil.which("java") is None:
        raise ServiceError(f"Java 17 ('java') is needed to run {product}; install it (apt-get install openjdk-17-jre)")
    libs.mkdir(parents=True, exist_ok=True)
    cmd = ["mvn", "-q", "-B", "-f", str(pom), f"-D{version_property}={version}", "dependency:copy-dependencies",
           f"-DoutputDirectory={libs}", "-DincludeScope=runtime"]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise ServiceError(
            f"Maven could not resolve {product} {version}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    done.write_text(version)
    return libs
