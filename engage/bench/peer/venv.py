"""The peer's own venv: Quix Streams pins confluent-kafka below the version the engine uses, so it cannot share
the engine's environment. Created once under the run directory, from the package registry, pinned."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from config.settings import PROJECT_ROOT

# numpy: the domain code the peer imports needs it (processors.profile), at the engine's version for the same maths.
QUIX_REQUIREMENTS = ("quixstreams==3.28.1", "tzdata", "numpy==2.4.6")


def peer_python(run_dir: Path) -> Path:
    """The peer venv's interpreter, creating the venv first if it is missing or incomplete."""
    venv = run_dir / "peer-venv"
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    wanted = "\n".join(QUIX_REQUIREMENTS)
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *QUIX_REQUIREMENTS], check=True)
    marker.write_text(wanted)
    return python


def peer_command(python: Path, in_topic: str, out_topic: str, bootstrap: str, group: str, state_dir: Path,
                 idle_seconds: float) -> list[str]:  # fmt: skip
    return [str(python), "-m", "engage.bench.peer.quix_app", in_topic, out_topic, bootstrap, group, str(state_dir),
            str(idle_seconds)]  # fmt: skip


def peer_env() -> dict[str, str]:
    """The repository on the path (the peer imports the engine's domain code, not its dependencies)."""
    import os

    return {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
