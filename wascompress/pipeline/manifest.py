"""The manifest of a compress folder: the command that owns it and every step it has finished.

``DIR/manifest.json`` is written (atomically) after each step, so a rerun of the same command skips what is
done and a different command is refused before anything changes (``--overwrite`` clears the folder first).
A step's record holds what the later steps and the report need (its files, their sha256, its figures)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from wascompress.errors import ConfigError
from wascompress.fileio import atomic_write_text

MANIFEST = "manifest.json"
VERSION = 1


class Manifest:
    """The command of a compress folder and its finished steps (name -> record)."""

    def __init__(self, root: Path, command: dict[str, Any], steps: dict[str, Any] | None = None,
                 replaces: bool = False) -> None:
        self.root, self.command, self.steps = root, command, dict(steps or {})
        self.replaces = replaces  # the folder holds another run, to be cleared by :meth:`start`

    def start(self) -> None:
        """Clear the other run this one replaces (``--overwrite``), once every check has passed."""
        if self.replaces:
            shutil.rmtree(self.root)
            self.replaces = False

    @property
    def path(self) -> Path:
        return self.root / MANIFEST

    def done(self, step: str) -> dict[str, Any] | None:
        """The record of ``step`` if it finished and every file it names is still there."""
        record = self.steps.get(step)
        if record is None or not all((self.root / f).is_file() for f in record.get("files", ())):
            return None
        return record

    def finish(self, step: str, record: dict[str, Any]) -> dict[str, Any]:
        """Record ``step`` as finished (the folder is created with the first record)."""
        self.steps[step] = record
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps({"version": VERSION, "command": self.command, "steps": self.steps},
                                                indent=2, sort_keys=True) + "\n")
        return record


def open_manifest(root: Path, command: dict[str, Any], overwrite: bool) -> Manifest:
    """The manifest of ``root`` for ``command``: a fresh one for a new (or, with ``overwrite``, cleared)
    folder, the recorded one for the same command; a one-line error, nothing changed, for another command or
    a folder that compress did not write. Nothing is changed here: with ``overwrite`` the old run is
    cleared by :meth:`Manifest.start`."""
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--out {root} is a file, not a folder")
    recorded = _read(root / MANIFEST)
    if recorded is not None and recorded.get("command") == command:
        return Manifest(root, command, recorded.get("steps"))
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            what = "a compress run of a different command" if recorded is not None else "files compress did not write"
            raise ConfigError(f"--out {root} holds {what}; pass --overwrite to replace it, or choose another folder")
        return Manifest(root, command, replaces=True)
    return Manifest(root, command)


def _read(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return None
    return data if isinstance(data, dict) and data.get("version") == VERSION else None
