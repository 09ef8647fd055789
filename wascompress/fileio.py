"""Atomic file writes: a temporary file in the same folder, flushed, then renamed over the target.

A reader never sees a half-written checkpoint, export or report, and a run killed mid-write leaves the
previous file intact.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def _umask() -> int:
    """The process's umask: read from /proc on Linux (no window in which it is changed); elsewhere set and
    restored, once, at import."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0)
    os.umask(umask)
    return umask


_NEW_FILE_MODE = 0o666 & ~_umask()  # what a plain open(path, "w") gives a new file


def check_output_file(path: str | Path, overwrite: bool) -> Path:
    """Refuse an output whose folder is missing, or that exists without ``overwrite``; writes nothing."""
    from wascompress.errors import ConfigError

    path = Path(path)
    if not path.resolve().parent.is_dir():
        raise ConfigError(f"output folder {path.parent} does not exist")
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} exists; pass --overwrite to replace it")
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _NEW_FILE_MODE)  # mkstemp makes 0600; give what open() would (umask applied)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to ``path`` atomically."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())
