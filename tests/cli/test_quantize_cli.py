"""``wascompress export --quantize int8``: a verified INT8 file and its agreement line, or one clear line,
exit 2 and nothing written."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from tests.cli.test_export_cli import cli
from tests.conftest import assert_one_line_error
from tests.export.runs import WAS_RUN, one_torch_thread, trained_run  # noqa: F401
from wascompress.checkpoint import load_checkpoint

DOM0 = ["--mode", "dom", "--seed", "0"]
TINY = ["--min-agreement", "90", "--calibration-images", "128"]  # see tests/export/test_quantize.py: TINY_AGREEMENT


@pytest.fixture(scope="module")
def was_run(tmp_path_factory) -> Path:
    return trained_run(tmp_path_factory, WAS_RUN)


def test_quantized_dom_export(tmp_path, was_run):
    out = tmp_path / "dom0-int8.onnx"
    result = cli("export", str(was_run / "best.pt"), *DOM0, "--quantize", "int8", *TINY, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and not result.stderr.strip(), result.stderr  # the quantizer is quiet
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["precision"] == "int8" and report["quantization"]["agreement"] >= 0.9
    line = next(line for line in result.stdout.splitlines() if "INT8" in line)
    assert "agrees with FP32 on" in line and "of 200 validation images (>= 90%)" in line
    assert f"INT8 {report['quantization']['int8_test_top1'] * 100:.2f}%" in line
    evaluated = cli("evaluate", str(out), "--json", str(tmp_path / "eval.json"))  # the INT8 file itself
    assert evaluated.returncode == 0, evaluated.stderr
    rows = json.loads((tmp_path / "eval.json").read_text())["rows"]
    assert rows[0]["precision"] == "int8" and (rows[0]["mode"], rows[0]["seed"]) == ("dom", 0)
    assert rows[0]["accuracy"] == pytest.approx(report["quantization"]["int8_test_top1"], abs=1e-12)


def moved_data(tmp_path: Path, was_run: Path) -> Path:
    """A copy of the run's checkpoint whose data set is not where it says."""
    checkpoint = load_checkpoint(was_run / "best.pt")
    moved = {**checkpoint.train_config, "dataset": "cifar10", "data_dir": str(tmp_path / "gone")}
    replace(checkpoint, train_config=moved).save(tmp_path / "moved.pt")
    return tmp_path / "moved.pt"


@pytest.mark.parametrize("case,args,fragment", [
    ("unsupported type", ["--quantize", "int4"], "--quantize int4 is not supported; choose from: int8"),
    ("no calibration data", ["--quantize", "int8"], "calibrates on the run's training images: pass --data-dir"),
    ("fails agreement", ["--quantize", "int8", "--min-agreement", "100"], "INT8 verification failed"),
    ("calibration without quantize", ["--calibration", "entropy"], "--calibration applies with --quantize int8 only"),
])
def test_bad_quantize_input(tmp_path, was_run, case, args, fragment):
    checkpoint = moved_data(tmp_path, was_run) if case == "no calibration data" else was_run / "best.pt"
    out = tmp_path / "out" / "model.onnx"
    out.parent.mkdir()
    assert_one_line_error(cli("export", str(checkpoint), *DOM0, *args, "--out", str(out)), fragment)
    assert not list(out.parent.iterdir())
