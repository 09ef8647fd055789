"""Atomic writes (``wascompress/fileio.py``): the whole file or the previous one, never a part, and no
temporary file left behind; an output that exists or whose folder is missing is refused before any work."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from wascompress import fileio
from wascompress.errors import ConfigError
from wascompress.fileio import atomic_torch_save, atomic_write_bytes, atomic_write_text, check_output_file


def names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def raising(error: BaseException):
    def fail(*args, **kwargs):
        raise error
    return fail


def test_writes_and_replaces_whole_files(tmp_path):
    out = tmp_path / "report.json"
    atomic_write_bytes(out, b"first")
    assert out.read_bytes() == b"first"
    atomic_write_text(out, "zweite Fassung \u2713")  # UTF-8, whatever the locale
    assert out.read_bytes() == "zweite Fassung \u2713".encode("utf-8")
    assert names(tmp_path) == ["report.json"]  # no temporary file left


@pytest.mark.parametrize("failing", ["write", "fsync", "replace"])
@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch, failing, error):
    out = tmp_path / "last.pt"
    out.write_bytes(b"previous")

    if failing == "write":  # some bytes reach the temporary file, then the write fails
        monkeypatch.setattr(fileio.os, "fdopen", lambda fd, mode: _HalfWriter(fd, error))
    else:
        monkeypatch.setattr(fileio.os, failing, raising(error))
    with pytest.raises(type(error)):
        atomic_write_bytes(out, b"new content that must not appear in part")
    assert out.read_bytes() == b"previous"
    assert names(tmp_path) == ["last.pt"]


_REAL_FDOPEN = os.fdopen  # fileio.os is the os module: patched, the writer still needs the real one


class _HalfWriter:
    """A file object that writes some bytes, then fails (a full disk, an interrupt)."""

    def __init__(self, fd: int, error: BaseException) -> None:
        self.handle = _REAL_FDOPEN(fd, "wb")
        self.error = error

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.handle.close()

    def write(self, data: bytes) -> None:
        self.handle.write(data[: len(data) // 2])
        self.handle.flush()
        raise self.error


def test_a_new_file_is_not_created_by_a_failed_write(tmp_path, monkeypatch):
    monkeypatch.setattr(fileio.os, "fsync", raising(OSError("I/O error")))
    with pytest.raises(OSError):
        atomic_write_text(tmp_path / "model.json", "{}")
    assert names(tmp_path) == []


def test_torch_save_round_trip_and_an_unsavable_object_writes_nothing(tmp_path):
    out = tmp_path / "best.pt"
    state = {"weights": torch.arange(6.0).view(2, 3), "epoch": 3}
    atomic_torch_save(state, out)
    loaded = torch.load(out, weights_only=True)
    assert torch.equal(loaded["weights"], state["weights"]) and loaded["epoch"] == 3
    with pytest.raises(Exception):
        atomic_torch_save({"fn": lambda: None}, out)  # pickling fails before any byte is written
    assert torch.equal(torch.load(out, weights_only=True)["weights"], state["weights"])
    assert names(tmp_path) == ["best.pt"]


def test_check_output_file_refuses_an_existing_file_without_overwrite(tmp_path):
    out = tmp_path / "dom.onnx"
    assert check_output_file(out, overwrite=False) == out  # a new file: fine
    out.write_bytes(b"old")
    with pytest.raises(ConfigError) as caught:
        check_output_file(str(out), overwrite=False)
    assert str(caught.value) == f"{out} exists; pass --overwrite to replace it"
    assert check_output_file(str(out), overwrite=True) == out
    assert out.read_bytes() == b"old" and names(tmp_path) == ["dom.onnx"]  # checking writes nothing


def test_check_output_file_refuses_a_missing_folder(tmp_path):
    with pytest.raises(ConfigError, match="output folder .*missing does not exist"):
        check_output_file(tmp_path / "missing" / "dom.onnx", overwrite=True)
    assert not (tmp_path / "missing").exists()


def test_written_files_get_the_mode_open_would_give(tmp_path):
    """mkstemp creates 0600 files; an atomic write must not make exports and checkpoints owner-only."""
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"x")
    atomic = tmp_path / "atomic.bin"
    fileio.atomic_write_bytes(atomic, b"x")
    assert stat.S_IMODE(atomic.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
