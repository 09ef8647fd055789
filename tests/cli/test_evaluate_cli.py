"""``wascompress evaluate`` through the command line: a grid, reproducible numbers, clear errors."""

from __future__ import annotations

import json

import pytest

from tests.conftest import assert_one_line_error, run_cli
from wascompress.train.config import TrainConfig
from wascompress.train.trainer import train
from wascompress.was import WASConfig


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    run = tmp_path_factory.mktemp("evaluate") / "run"
    train(TrainConfig(model="tiny", dataset="synthetic", epochs=1, lr=0.05, batch_size=64, bn_batches=2,
                      limit_train=600, was=WASConfig(crop=(0.4, 0.6), translate=0.3)), run)
    return run / "best.pt"


def test_grid_is_reproducible(checkpoint, tmp_path):
    args = ["evaluate", str(checkpoint), "--mode", "aom", "dom", "--seed", "0", "1", "--shift", "rotate:0:30",
            "--shift", "translate:0.1", "--limit-test", "200"]
    first = run_cli(*args, "--json", str(tmp_path / "a.json"), "--plot", str(tmp_path / "a.png"))
    assert first.returncode == 0, first.stderr
    second = run_cli(*args, "--json", str(tmp_path / "b.json"))
    assert second.returncode == 0, second.stderr
    rows_a = json.loads((tmp_path / "a.json").read_text())["rows"]
    rows_b = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert rows_a == rows_b and len(rows_a) == 3 * 3  # (aom, dom 0, dom 1) x (clean + 2 shifts)
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    for row in rows_a:
        clean = next(r for r in rows_a if (r["mode"], r["seed"], r["shift"]) == (row["mode"], row["seed"], "none"))
        assert row["drop_points"] == pytest.approx((clean["accuracy"] - row["accuracy"]) * 100)


@pytest.mark.parametrize("extra,fragment", [(["--shift", "shear:1"], "shear"), (["--seed", "-2", "--mode", "dom"], "-2")])
def test_bad_input(checkpoint, run_main, extra, fragment):
    assert_one_line_error(run_main("evaluate", str(checkpoint), *extra), fragment)


@pytest.fixture(scope="module")
def dom_export(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluate-onnx") / "dom1.onnx"
    result = run_cli("export", str(checkpoint), "--mode", "dom", "--seed", "1", "--format", "pruned", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def test_onnx_file_scores_as_its_checkpoint(checkpoint, dom_export, tmp_path):
    """An exported DOM file, run by ONNX Runtime on the test set its export records, scores what the
    checkpoint's DOM seed scores in PyTorch: clean and under the same shifted images."""
    shifts = ["--shift", "rotate:0:30", "--shift", "crop:0.6:0.9", "--limit-test", "200"]
    source = run_cli("evaluate", str(checkpoint), "--mode", "dom", "--seed", "1", *shifts, "--json", str(tmp_path / "c.json"))
    exported = run_cli("evaluate", str(dom_export), *shifts, "--json", str(tmp_path / "o.json"))
    assert source.returncode == 0 and exported.returncode == 0, source.stderr + exported.stderr
    assert "FP32 on ONNX Runtime" in exported.stdout
    rows_c = json.loads((tmp_path / "c.json").read_text())["rows"]
    rows_o = json.loads((tmp_path / "o.json").read_text())["rows"]
    assert [(r["mode"], r["seed"], r["shift"]) for r in rows_o] == [(r["mode"], r["seed"], r["shift"]) for r in rows_c]
    for c, o in zip(rows_c, rows_o):  # 200 images: at most one near-tie may flip between the two runtimes
        assert o["accuracy"] == pytest.approx(c["accuracy"], abs=1 / 200 + 1e-9)
        assert o["file"] == "dom1.onnx" and o["precision"] == "fp32"


def test_user_onnx_file_needs_a_dataset(dom_export, tmp_path, run_main):
    import onnx

    stripped = onnx.load(str(dom_export))
    del stripped.metadata_props[:]  # as a file from another tool: no record of its data
    onnx.save(stripped, str(tmp_path / "user.onnx"))
    assert_one_line_error(run_main("evaluate", str(tmp_path / "user.onnx")), "give --dataset")
    given = run_cli("evaluate", str(tmp_path / "user.onnx"), "--dataset", "synthetic", "--limit-test", "100")
    assert given.returncode == 0, given.stderr
    assert "onnx " in given.stdout  # no mode recorded: labelled as a plain ONNX file


@pytest.mark.parametrize("extra,fragment", [(["--mode", "dom"], "--mode applies to a checkpoint"),
                                            (["--seed", "3"], "--seed applies to a checkpoint"),
                                            (["--limit-test", "0"], "--limit-test must be a positive integer")])
def test_bad_onnx_input(dom_export, run_main, extra, fragment):
    assert_one_line_error(run_main("evaluate", str(dom_export), *extra), fragment)
