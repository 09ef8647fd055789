"""The manifest of a compress folder: the same command resumes, another is refused before anything changes,
``--overwrite`` clears only when the run starts."""

from __future__ import annotations

import pytest

from wascompress.errors import ConfigError
from wascompress.pipeline.manifest import open_manifest

COMMAND = {"model": "tiny", "target_macs": [0.5]}


def test_the_same_command_finds_its_finished_steps(tmp_path):
    """Catches a rerun that forgets what was done (it would train and export again)."""
    manifest = open_manifest(tmp_path / "out", COMMAND, overwrite=False)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.onnx").write_bytes(b"x")
    manifest.finish("export:a", {"files": ["a.onnx"]})
    again = open_manifest(tmp_path / "out", dict(COMMAND), overwrite=False)
    assert again.done("export:a") == {"files": ["a.onnx"]}
    (tmp_path / "out" / "a.onnx").unlink()
    assert again.done("export:a") is None  # a step whose file is gone is redone


@pytest.mark.parametrize("foreign", [False, True])
def test_another_command_or_foreign_files_are_refused_and_kept(tmp_path, foreign):
    """Catches a folder cleared (or mixed into) by a command that does not own it."""
    root = tmp_path / "out"
    if foreign:
        root.mkdir()
        (root / "mine.txt").write_text("keep")
    else:
        open_manifest(root, COMMAND, overwrite=False).finish("plan", {})
    before = sorted(p.name for p in root.iterdir())
    with pytest.raises(ConfigError, match="pass --overwrite"):
        open_manifest(root, {**COMMAND, "target_macs": [0.4]}, overwrite=False)
    manifest = open_manifest(root, {**COMMAND, "target_macs": [0.4]}, overwrite=True)
    assert sorted(p.name for p in root.iterdir()) == before  # nothing cleared before the checks pass
    manifest.start()
    assert not root.exists()
