"""``wascompress compress`` end to end through the command: a tiny zoo model from a state_dict file and a timm
model, 2 budgets, a few hundred images; every file present and verified, the report's figures equal to what
``wascompress profile`` prints for the same files, the figure one point per file, a SIGKILLed run finished by a
rerun with the same bytes, and bad input refused in one line with nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
import pytest
import torch

from tests.conftest import assert_one_line_error, kill_midway, run_cli
from wascompress.models import create_model

FAST = ["--dataset", "synthetic", "--target-macs", "0.75", "0.5", "--epochs", "2", "--limit-train", "300",
        "--limit-test", "100", "--val-size", "50", "--batch-size", "50", "--bn-batches", "1", "--search-seeds", "8",
        "--latency-runs", "3"]
FILES = ("original", "aom", "dom-0.75", "dom-0.5")


def tiny_weights(path: Path, model: str = "tiny") -> Path:
    torch.manual_seed(3)
    torch.save(create_model(model, num_classes=10).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def compressed(tmp_path_factory) -> tuple[Path, list[str]]:
    """One uninterrupted run of the tiny zoo model (in a real process), and its command line."""
    root = tmp_path_factory.mktemp("compress")
    args = ["compress", "--model", "tiny", "--init-from", str(tiny_weights(root / "tiny.pth")), *FAST, "--quiet"]
    result = run_cli(*args, "--out", str(root / "out"), timeout=600)
    assert result.returncode == 0, result.stderr
    return root / "out", args


def test_every_file_is_there_and_verified(compressed):
    """Catches a file missing from the run, or one whose export was not verified against its model."""
    out, _ = compressed
    for name in FILES:
        onnx.checker.check_model(onnx.load(out / f"{name}.onnx"), full_check=True)
        check = json.loads((out / f"{name}.json").read_text())["verification"]
        assert check["max_abs_diff_scaled"] <= check["tolerance"]
    report = json.loads((out / "report.json").read_text())
    assert [r["name"] for r in report["rows"]] == list(FILES) and all(r["verified"] for r in report["rows"])
    assert report["rows"][0]["kind"] == "original"  # the user's own model is the first row
    assert (out / "report.md").read_text().count(".onnx` |") == len(FILES)


def test_the_dom_files_are_the_fitted_doms_the_run_trained(compressed):
    """Catches a compress that fits and trains each budget's DOM with its correction but exports the seed's
    own draws (another network than the one it trained and reported)."""
    out, _ = compressed
    fits = json.loads((out / "run" / "config.json").read_text())["config"]["dom_budget"]["fits"]
    for name in FILES[2:]:
        report = json.loads((out / f"{name}.json").read_text())
        assert str(report["seed"]) in fits and report["fitted"] == f"seed{report['seed']}"


def test_the_original_row_is_the_start_weights_as_they_came(compressed, tmp_path):
    """Catches an "original" file exported from the trained weights (or with WAS) instead of the start file."""
    import onnxruntime as ort

    out, args = compressed
    model = create_model("tiny", num_classes=10)
    model.load_state_dict(torch.load(args[args.index("--init-from") + 1], weights_only=True))
    x = torch.randn(4, 3, 32, 32)
    session = ort.InferenceSession(str(out / "original.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(got), model.eval()(x), atol=1e-4, rtol=1e-4)


def test_report_figures_equal_what_profile_prints(compressed, tmp_path):
    """Catches a report whose MACs, parameters, sizes or accuracies are not the profiler's for the same files."""
    out, _ = compressed
    files = [str(out / f"{name}.onnx") for name in FILES]
    result = run_cli("profile", *files, "--dataset", "synthetic", "--limit-test", "100", "--runs", "2",
                     "--json", str(tmp_path / "p.json"))
    assert result.returncode == 0, result.stderr
    profiled = {Path(m["path"]).stem: m for m in json.loads((tmp_path / "p.json").read_text())["models"]}
    for row in json.loads((out / "report.json").read_text())["rows"]:
        model = profiled[row["name"]]
        assert (row["macs"], row["params"], row["file_bytes"]) == (model["macs"], model["params"], model["file_bytes"])
        assert row["test_accuracy"] == model["test_accuracy"]
        assert f"{model['macs']:,}" in result.stdout.replace(" ", "") or str(model["macs"]) in result.stdout


def test_the_figure_decodes_with_one_point_per_file(compressed):
    """Catches a PNG that does not decode, or that leaves out a file (or plots one twice)."""
    from PIL import Image

    image = Image.open(compressed[0] / "accuracy_latency.png")
    image.load()
    assert image.size[0] > 100 and image.size[1] > 100
    points = json.loads(image.text["wascompress.points"])
    assert [p[0] for p in points] == list(FILES)


def test_a_rerun_redoes_nothing(compressed):
    """Catches a rerun of the same command that trains or exports again (the files would be rewritten)."""
    out, args = compressed
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file()}
    result = run_cli(*args, "--out", str(out))
    assert result.returncode == 0, result.stderr
    after = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file()}
    assert {k: v for k, v in after.items() if k.endswith(".onnx")} == {k: v for k, v in before.items()
                                                                        if k.endswith(".onnx")}
    assert after["manifest.json"] == before["manifest.json"]


def test_sigkill_mid_fine_tuning_then_rerun_gives_the_same_bytes(compressed, tmp_path):
    """Catches a resume that restarts or changes training, or exports that depend on more than the weights
    (a checkpoint file's sha256 covers its timings: recording it made every run's bytes differ)."""
    out, args = compressed
    again = tmp_path / "out"
    kill_midway([*args, "--out", str(again)], again / "run" / "last.pt", settle=0.3)
    assert not (again / "report.json").exists()
    result = run_cli(*args, "--out", str(again), timeout=600)
    assert result.returncode == 0, result.stderr
    for name in FILES:
        assert (again / f"{name}.onnx").read_bytes() == (out / f"{name}.onnx").read_bytes(), name


def test_a_timm_model(tmp_path):
    """Catches a pipeline that only works for zoo names (timm:NAME models are built, exported and profiled)."""
    import timm

    torch.manual_seed(0)
    weights = tmp_path / "w.pth"
    torch.save(timm.create_model("test_resnet", pretrained=False, num_classes=10).state_dict(), weights)
    result = run_cli("compress", "--model", "timm:test_resnet", "--init-from", str(weights), *FAST[:5],
                     "--epochs", "1", *FAST[7:], "--out", str(tmp_path / "out"), "--quiet", timeout=600)
    assert result.returncode == 0, result.stderr
    rows = json.loads((tmp_path / "out" / "report.json").read_text())["rows"]
    assert [r["name"] for r in rows] == list(FILES) and all(r["verified"] for r in rows)


@pytest.mark.parametrize("case,fragment", [
    ("other-architecture", "does not fit tiny"),
    ("unreachable-budget", "no DOM seed of the 8 tried reaches 0.01"),
    ("missing-data", "no-such-folder"),
    ("missing-weights", "weights file not found"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, run_main, case, fragment):
    """Catches a mistake found after work started (a folder or run written), or reported as a traceback."""
    weights = tiny_weights(tmp_path / "w.pth", "vgg16" if case == "other-architecture" else "tiny")
    args = ["compress", "--model", "tiny", "--init-from", str(weights), *FAST, "--out", str(tmp_path / "out")]
    if case == "unreachable-budget":
        args[args.index("0.5")] = "0.01"
    elif case == "missing-data":
        args[args.index("synthetic")] = "imagefolder"
        args += ["--data-dir", str(tmp_path / "no-such-folder")]
    elif case == "missing-weights":
        args[args.index(str(weights))] = str(tmp_path / "none.pth")
    assert_one_line_error(run_main(*args), fragment, absent=[tmp_path / "out"])


def test_a_different_command_into_a_finished_folder_changes_nothing(compressed, tmp_path, run_main):
    """Catches a folder of one run overwritten (or mixed into) by another command without --overwrite."""
    out, args = compressed
    copy = shutil.copytree(out, tmp_path / "out")
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    other = [a if a != "0.5" else "0.4" for a in args if a != "--quiet"]
    assert_one_line_error(run_main(*other, "--out", str(copy)), "pass --overwrite")
    assert {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()} == before
