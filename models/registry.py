"""A model registry on disk: each trained model a versioned directory, one of them promoted.

    <root>/<version>/model-7d.txt, model-30d.txt   LightGBM boosters (text format)
    <root>/<version>/metadata.json                 features, data window, metrics, calibration, code version
    <root>/promoted.json                           {"current": version, "history": [older promotions...]}

Promotion writes ``promoted.json`` atomically (write then rename), so a worker polling it never reads half a
file; ``rollback`` re-promotes the previous one. Workers reload when ``current`` changes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

POINTER = "promoted.json"


@dataclass(frozen=True)
class ModelEntry:
    version: str
    path: Path
    metadata: dict[str, Any]


class ModelRegistry:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def new_version_dir(self, version: str) -> Path:
        path = self.root / version
        if path.exists():
            raise FileExistsError(f"model version {version} already exists in {self.root}")
        path.mkdir(parents=True)
        return path

    def save_metadata(self, version: str, metadata: dict[str, Any]) -> None:
        (self.root / version / "metadata.json").write_text(json.dumps(metadata, indent=2, default=str))

    def list(self) -> list[ModelEntry]:
        if not self.root.exists():
            return []
        out = []
        for path in sorted(p for p in self.root.iterdir() if (p / "metadata.json").exists()):
            out.append(ModelEntry(path.name, path, json.loads((path / "metadata.json").read_text())))
        return out

    def get(self, version: str) -> ModelEntry:
        path = self.root / version
        if not (path / "metadata.json").exists():
            known = ", ".join(e.version for e in self.list()) or "none"
            raise KeyError(f"no model version {version!r} in {self.root}; known: {known}")
        return ModelEntry(version, path, json.loads((path / "metadata.json").read_text()))

    def _pointer(self) -> dict[str, Any]:
        path = self.root / POINTER
        return json.loads(path.read_text()) if path.exists() else {"current": None, "history": []}

    def _write_pointer(self, pointer: dict[str, Any]) -> None:
        tmp = self.root / f".{POINTER}.{os.getpid()}"
        tmp.write_text(json.dumps(pointer, indent=2))
        tmp.replace(self.root / POINTER)

    def promoted(self) -> ModelEntry | None:
        current = self._pointer()["current"]
        return self.get(current) if current else None

    def promote(self, version: str) -> ModelEntry:
        entry = self.get(version)
        pointer = self._pointer()
        if pointer["current"] != version:
            if pointer["current"]:
                pointer["history"].append(pointer["current"])
            pointer["current"] = version
            self._write_pointer(pointer)
        return entry

    def rollback(self) -> ModelEntry | None:
        """Back to the previously promoted model (None: back to the heuristic, when there was none before)."""
        pointer = self._pointer()
        if pointer["current"] is None:
            raise ValueError("nothing is promoted, so there is nothing to roll back")
        pointer["current"] = pointer["history"].pop() if pointer["history"] else None
        self._write_pointer(pointer)
        return self.get(pointer["current"]) if pointer["current"] else None

    def pointer_stamp(self) -> str | None:
        """Cheap change detection for hot reload: the promoted version, or None."""
        current = self._pointer()["current"]
        return str(current) if current else None
