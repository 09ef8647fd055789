"""Shared test fixtures: where the real CIFAR-10 lies, two CLI runners (a subprocess, this process) and the
check of a user mistake's answer."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from wascompress.checkpoint import Checkpoint

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


def kill_midway(args: list[str], wait_for: Path, settle: float) -> None:
    """Start ``python -m wascompress ARGS``, wait until ``wait_for`` exists (at most 2 minutes) and ``settle``
    seconds more, then SIGKILL it: a run interrupted at no point of its choosing."""
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "wascompress", *args], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not wait_for.exists():
        time.sleep(0.05)
    time.sleep(settle)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def assert_resumed_where_killed(resumed: subprocess.CompletedProcess, run: Path, killed_at: Checkpoint,
                                reference: Path) -> None:
    """``resumed`` (the :func:`run_cli` of ``--resume`` into ``run``) continued from ``killed_at``, the
    checkpoint :func:`kill_midway` left in ``run``: it says so, naming that checkpoint's epoch and step, and ran
    only the steps left (``steps_run`` per epoch in metrics.jsonl, against the uninterrupted run in
    ``reference``). Catches a resume that restarts from epoch 1 (deterministic training then still ends with
    the uninterrupted weights) and one that skips or repeats steps."""
    import json

    def steps(folder: Path) -> list[int]:
        return [json.loads(line)["steps_run"] for line in (folder / "metrics.jsonl").read_text().splitlines()]

    epoch, step = killed_at.progress.epoch, killed_at.progress.step  # epochs done, steps into the next one
    assert f"resuming {run} at epoch {epoch + 1}, step {step}" in resumed.stderr, resumed.stderr[-2000:]
    full, ran = steps(reference), steps(run)
    assert epoch < len(full) and 0 <= step < full[epoch]
    # the epochs before the kill were run by the killed process; the one it stopped in, from its step on
    assert ran == full[:epoch] + [full[epoch] - step] + full[epoch + 1:], (ran, full, epoch, step)


def assert_resume_after_kill_is_bit_identical(args: list[str], tmp_path: Path) -> Checkpoint:
    """Run ``wascompress ARGS`` (a training command without ``--out``) uninterrupted into ``tmp_path/ref``,
    then killed at no point of its choosing into ``tmp_path/killed`` and resumed there: the resume continued
    where it was killed (:func:`assert_resumed_where_killed`) and ends with the uninterrupted run's weights,
    bit for bit. Returns the resumed run's last checkpoint."""
    import torch

    from wascompress.checkpoint import load_checkpoint

    reference = run_cli(*args, "--out", str(tmp_path / "ref"))
    assert reference.returncode == 0, reference.stderr
    run = tmp_path / "killed"
    kill_midway([*args, "--out", str(run)], run / "last.pt", 0.3)
    killed_at = load_checkpoint(run / "last.pt")
    assert (killed_at.progress.epoch, killed_at.progress.step) < (2, 0), "the run finished before it was killed"
    resumed = run_cli(*args, "--out", str(run), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert_resumed_where_killed(resumed, run, killed_at, tmp_path / "ref")
    a, b = load_checkpoint(tmp_path / "ref" / "last.pt"), load_checkpoint(run / "last.pt")
    assert a.state_dict.keys() == b.state_dict.keys()
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    return b


@pytest.fixture
def run_main(capsys):
    """``wascompress ARGS`` in this process, as :func:`run_cli` reports it (exit code, stdout, stderr) without
    an interpreter's start-up (about 5 s here, mostly importing torch): for the many bad-input cases, which
    fail before any work. A subprocess test per command still checks the real process (no traceback)."""
    from wascompress.cli import main

    def run(*args: str) -> subprocess.CompletedProcess:
        capsys.readouterr()  # whatever the test printed before
        handler = logging.StreamHandler(sys.stderr)  # main's basicConfig is a no-op under pytest's root handlers
        logging.getLogger().addHandler(handler)
        try:
            code = main(list(args))
        except SystemExit as stop:  # argparse's errors and --help
            code = stop.code if isinstance(stop.code, int) else 1
        finally:
            logging.getLogger().removeHandler(handler)
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(["wascompress", *args], code, captured.out, captured.err)

    return run


def assert_one_line_error(result: subprocess.CompletedProcess, fragment: str, *, absent: Iterable[Path] = ()) -> None:
    """A user mistake's answer (``result`` of :func:`run_cli` or ``run_main``): exit code 2, one line on stderr
    that says error and names ``fragment``, no traceback, and none of the ``absent`` paths written."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "error" in lines[0] and "Traceback" not in result.stderr, result.stderr
    assert fragment in lines[0], lines[0]
    written = [str(path) for path in absent if Path(path).exists()]
    assert not written, f"a refused command wrote {written}"
