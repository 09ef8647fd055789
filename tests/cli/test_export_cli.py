"""``wascompress export`` end to end: a verified file and its report, or one clear line and nothing written."""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import onnx
import pytest

from tests.conftest import assert_one_line_error, run_cli
from tests.export.runs import BASELINE_RUN, WAS, WAS_RUN, one_torch_thread, trained_run  # noqa: F401
from wascompress.cli import build_parser
from wascompress.export.exporter import ExportConfig
from wascompress.export.from_checkpoint import export_checkpoint
from wascompress.export.onnx_graph import ExportError
from wascompress.train.config import TrainConfig

ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # the subprocesses share 2 cores with the test process


def cli(*args: str) -> subprocess.CompletedProcess:
    return run_cli(*args, env=ONE_THREAD)


@pytest.fixture(scope="module")
def was_run(tmp_path_factory) -> Path:
    return trained_run(tmp_path_factory, WAS_RUN)


@pytest.fixture(scope="module")
def baseline_run(tmp_path_factory) -> Path:
    return trained_run(tmp_path_factory, BASELINE_RUN)


@pytest.fixture
def cifar_run(tmp_path_factory, cifar_dir) -> Path:
    config = TrainConfig(model="tiny", dataset="cifar10", data_dir=str(cifar_dir), epochs=1, batch_size=50,
                         limit_train=200, limit_test=100, bn_batches=2, was=WAS)
    return trained_run(tmp_path_factory, config)


def test_export_dom_seed(tmp_path, was_run):
    out = tmp_path / "dom0.onnx"
    result = cli("export", str(was_run / "best.pt"), "--mode", "dom", "--seed", "0", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert out.is_file() and out.with_suffix(".json").is_file()
    report = json.loads(out.with_suffix(".json").read_text())
    assert (report["mode"], report["seed"], report["format"]) == ("dom", 0, "pruned")
    assert report["verification"]["top1_identical"]
    assert onnx.load(out).graph.node
    assert str(out) in result.stdout and "DOM seed 0 pruned" in result.stdout


# ---------------------------------------------------------------------------------------------------
# Bad input: exit 2, one line on stderr, nothing written (and an existing output left as it was)

OLD_MODEL, OLD_REPORT = b"an older model", "an older report\n"


def prepare(case: str, tmp_path: Path, was_run: Path, baseline_run: Path) -> tuple[list[str], str]:
    """The command-line arguments of a bad-input case and a fragment its error line must contain."""
    best = str(was_run / "best.pt")
    dom0 = ["--mode", "dom", "--seed", "0"]
    if case == "not a checkpoint":
        text = tmp_path / "notes.pt"
        text.write_text("this is not a checkpoint\n")
        return [str(text), *dom0], "notes.pt"
    if case == "truncated checkpoint":
        data = (was_run / "best.pt").read_bytes()
        (tmp_path / "half.pt").write_bytes(data[: len(data) // 2])
        return [str(tmp_path / "half.pt"), *dom0], "half.pt"
    if case == "trained without WAS":
        return [str(baseline_run / "best.pt"), *dom0], "without WAS"
    if case == "negative seed":
        return [best, "--mode", "dom", "--seed", "-1"], "non-negative integer"
    if case == "seed not a number":
        return [best, "--mode", "dom", "--seed", "abc"], "'abc'"
    if case == "dom without seed":
        return [best, "--mode", "dom"], "--seed"
    raise AssertionError(case)


CASES = ["not a checkpoint", "truncated checkpoint", "trained without WAS", "negative seed", "seed not a number",
         "dom without seed"]
EXISTING = {"not a checkpoint", "trained without WAS", "seed not a number"}


@pytest.mark.parametrize("case", CASES)
def test_bad_export_input(tmp_path, was_run, baseline_run, run_main, case):
    args, fragment = prepare(case, tmp_path, was_run, baseline_run)
    out = tmp_path / "out" / "model.onnx"
    out.parent.mkdir()
    existing = case in EXISTING
    if existing:  # --overwrite was asked for, but nothing valid came to replace the old files
        out.write_bytes(OLD_MODEL)
        out.with_suffix(".json").write_text(OLD_REPORT)
        args.append("--overwrite")
    assert_one_line_error(run_main("export", *args, "--out", str(out)), fragment)
    if existing:
        assert out.read_bytes() == OLD_MODEL and out.with_suffix(".json").read_text() == OLD_REPORT
        assert sorted(p.name for p in out.parent.iterdir()) == ["model.json", "model.onnx"]
    else:
        assert not list(out.parent.iterdir())


def test_output_folder_missing(tmp_path, was_run, run_main):
    out = tmp_path / "missing" / "model.onnx"
    result = run_main("export", str(was_run / "best.pt"), "--mode", "dom", "--seed", "0", "--out", str(out))
    assert_one_line_error(result, "missing")
    assert not out.parent.exists()



@pytest.mark.parametrize("args, fragment", [
    (["--target-macs", "2"], "(0, 1]"),
    (["--search-seeds", "0"], "--search-seeds"),
    (["--calibration", "entropy"], "--quantize"),
    (["--image-size", "0"], "image size"),
    ([], "--overwrite"),
], ids=["budget", "search", "quantize-option", "image-size", "existing-output"])
def test_option_mistakes_are_named_before_the_checkpoint_is_read(tmp_path, run_main, args, fragment):
    """A wrong option is the error even when the checkpoint is missing too: the options are checked first."""
    out = tmp_path / "model.onnx"
    out.write_bytes(OLD_MODEL)
    result = run_main("export", str(tmp_path / "missing.pt"), *args, "--out", str(out))
    assert_one_line_error(result, fragment)
    assert out.read_bytes() == OLD_MODEL

def test_existing_output_without_overwrite(tmp_path, was_run, run_main):
    out = tmp_path / "model.onnx"
    out.write_bytes(OLD_MODEL)
    out.with_suffix(".json").write_text(OLD_REPORT)
    result = run_main("export", str(was_run / "best.pt"), "--out", str(out))
    assert_one_line_error(result, "--overwrite")
    assert out.read_bytes() == OLD_MODEL and out.with_suffix(".json").read_text() == OLD_REPORT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.onnx"]


def test_recorded_data_set_missing(tmp_path, cifar_run):
    """In a real process (the other bad-input cases run in this one): one line, no traceback."""
    out = tmp_path / "model.onnx"
    out.write_bytes(OLD_MODEL)
    result = cli("export", str(cifar_run / "best.pt"), "--mode", "dom", "--seed", "0", "--out", str(out),
                 "--data-dir", "/nonexistent", "--overwrite")
    assert_one_line_error(result, "--data-dir")
    assert "/nonexistent" in result.stderr
    assert out.read_bytes() == OLD_MODEL and sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_recorded_data_set_missing_without_recalibration_verifies_on_random_inputs(tmp_path, cifar_run):
    report = export_checkpoint(cifar_run / "best.pt", tmp_path / "m.onnx",
                               ExportConfig(mode="dom", seed=0, recalibrate_bn=False), data_dir="/nonexistent")
    assert report["bn"].startswith("stored") and report["verification"]["inputs_checked"] == 2 + 3


# ---------------------------------------------------------------------------------------------------
# In process: a verification failure (a subprocess cannot be monkeypatched), options' effects


def failing_verify(*args, **kwargs):
    raise ExportError("verification failed: ONNX Runtime differs from PyTorch by 1.00e+00 (faked)")


@pytest.mark.parametrize("existing", [False, True], ids=["fresh", "overwrite"])
def test_verification_failure_leaves_no_file(tmp_path, was_run, monkeypatch, run_main, existing):
    monkeypatch.setattr("wascompress.export.exporter.verify", failing_verify)
    out = tmp_path / "model.onnx"
    args = ["export", str(was_run / "best.pt"), "--mode", "dom", "--seed", "0", "--out", str(out)]
    if existing:  # the older file would look current: it must be gone
        out.write_bytes(OLD_MODEL)
        out.with_suffix(".json").write_text(OLD_REPORT)
        args.append("--overwrite")
    assert_one_line_error(run_main(*args), "verification failed")
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------------
# In process (cheap): the seed-search options


def test_search_seeds_for_fewest_macs(tmp_path, was_run, run_main):
    out = tmp_path / "macs.onnx"
    result = run_main("export", str(was_run / "best.pt"), "--search-seeds", "8", "--objective", "macs",
                      "--max-drop", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    stdout = result.stdout
    report = json.loads(out.with_suffix(".json").read_text())
    table = report["seed_search"]["seeds"]
    allowed = [row for row in table if row["drop_points"] <= 1.0]
    chosen = min(allowed, key=lambda r: (r["pruned_macs"], -r["val_acc"], r["seed"]))
    assert report["seed"] == chosen["seed"] and report["mode"] == "dom"
    assert report["seed_search"]["objective"] == "macs"
    assert [row["chosen"] for row in table] == [row["seed"] == chosen["seed"] for row in table]
    marked = [line for line in stdout.splitlines() if line.endswith("<- chosen")]
    assert len(marked) == 1 and marked[0].split()[0] == str(chosen["seed"])
    assert len([line for line in stdout.splitlines() if line.split()[:1] and line.split()[0].isdigit()]) == 8


def test_zero_bn_batches_is_named_in_the_error(tmp_path, was_run, run_main):
    result = run_main("export", str(was_run / "best.pt"), "--mode", "dom", "--seed", "0", "--bn-batches", "0",
                      "--out", str(tmp_path / "m.onnx"))
    assert_one_line_error(result, "--bn-batches")


# ---------------------------------------------------------------------------------------------------
# Input geometry: the checkpoint's, or --image-size (the old --input-shape C,H,W still works)


def test_image_size_overrides_the_trained_size(tmp_path, was_run, run_main):
    out, old = tmp_path / "wide.onnx", tmp_path / "old.onnx"
    result = run_main("export", str(was_run / "best.pt"), "--mode", "dom", "--seed", "0", "--image-size", "48", "40",
                      "--out", str(out))
    assert result.returncode == 0 and "pruned at 48x40" in result.stdout, result.stderr
    dims = [d.dim_value for d in onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim[1:]]
    report = json.loads(out.with_suffix(".json").read_text())
    assert dims == [3, 48, 40] and report["input_shape"] == [3, 48, 40]  # the channel count is the checkpoint's
    assert report["verification"]["inputs_checked"] > 2 + 3  # the real images came at 48x40 too
    result = run_main("export", str(was_run / "best.pt"), "--mode", "dom", "--seed", "0", "--input-shape", "3,48,40",
                      "--out", str(old))
    assert result.returncode == 0 and old.read_bytes() == out.read_bytes(), result.stderr  # the old spelling


@pytest.mark.parametrize("flag, size, fragment", [
    ("--input-shape", "1,32,32", "RGB images"), ("--input-shape", "3,x,32", "C,H,W"),
    ("--input-shape", "3,4,32", "[8, 4096]"), ("--image-size", "4", "[8, 4096]"), ("--image-size", "wide", "H W"),
])
def test_bad_image_size_is_one_line(tmp_path, was_run, run_main, flag, size, fragment):
    assert_one_line_error(run_main("export", str(was_run / "best.pt"), flag, size,
                                   "--out", str(tmp_path / "m.onnx")), fragment)
    assert not list(tmp_path.iterdir())


def test_old_format_and_storage_names_give_the_same_settings(capsys):
    """``--format sparse`` is the dense format's old name, ``--sparse-storage`` that of ``--sparse-initializers``:
    scripts that use them get the same export settings; --help shows only the new names."""
    def settings(*flags: str) -> argparse.Namespace:
        return build_parser().parse_args(["export", "run/best.pt", "--out", "m.onnx", "--mode", "dom", *flags])

    new = settings("--format", "dense", "--sparse-initializers")
    assert settings("--format", "sparse", "--sparse-storage") == new and new.format == "dense"
    assert new != settings("--format", "pruned") and ExportConfig(format="sparse").format == "dense"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["export", "--help"])
    shown = capsys.readouterr().out
    assert "{dense,pruned}" in shown and "--sparse-initializers" in shown and "--sparse-storage" not in shown


def test_help_names_the_image_size_not_its_old_spelling(run_main):
    for command, old in (("export", "--input-shape"), ("profile", "--input-shape"), ("models", "--input-size")):
        shown = run_main(command, "--help").stdout
        assert "--image-size H [W ...]" in shown and old not in shown, shown


def test_current_exporter_keeps_library_logs_off_the_output(tmp_path, was_run):
    """The torch.export-based exporter's optimiser logs its passes at INFO: the CLI shows wascompress's own
    progress only (other libraries' from WARNING up, or with --verbose)."""
    result = run_cli("export", str(was_run / "best.pt"), "--mode", "dom", "--seed", "0", "--out", str(tmp_path / "d.onnx"),
                     env={**ONE_THREAD, "WASCOMPRESS_ONNX_EXPORTER": "dynamo"})
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "d.json").read_text())["metadata"]["wascompress.mode"] == "dom"
    noise = [line for line in (result.stdout + result.stderr).splitlines()
             if "unused" in line or "PassManager" in line or "constant folding" in line]
    assert not noise, noise
