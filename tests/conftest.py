"""Shared test fixtures: where the real CIFAR-10 lies, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# The suite exports hundreds of small models: with PyTorch's current (torch.export-based) ONNX exporter
# that takes about five times as long as with the legacy one, so the suite uses the legacy exporter unless
# told otherwise (WASCOMPRESS_ONNX_EXPORTER=dynamo runs it with the current one); tests/export/
# test_exporters.py checks the current exporter against the legacy one on every zoo model.
os.environ.setdefault("WASCOMPRESS_ONNX_EXPORTER", "legacy")


def real_data_dir() -> Path:
    return Path(os.environ.get("WASCOMPRESS_DATA_DIR", REPO.parent / "shared" / "data"))


@pytest.fixture
def cifar_dir() -> Path:
    path = real_data_dir()
    if not (path / "cifar-10-python.tar.gz").exists() and not (path / "cifar-10-batches-py").exists():
        pytest.skip(f"real CIFAR-10 not found at {path}")
    return path


def run_cli(*args: str, timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m wascompress ARGS`` in a subprocess, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "wascompress", *args],
        capture_output=True, text=True, timeout=timeout, cwd=REPO, env={**os.environ, **(env or {})},
    )
