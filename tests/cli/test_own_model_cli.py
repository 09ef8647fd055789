"""A user's own model at its own input size, through the CLI from a checkpoint: torchvision networks
(random weights) train one short epoch at 64x64 on a generated image folder with crop + translate WAS,
export AOM, DOM sparse and DOM pruned (each verified on ONNX Runtime), and are profiled side by side."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from tests.data.folders import write_image_folder
from tests.export.runs import one_torch_thread  # noqa: F401
from wascompress.cli import main
from wascompress.data import BatchLoader, load_dataset

SIZE = 64


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("folder") / "images", classes=3, per_class=8, size=(72, 80))


def cli(capsys, *args: str) -> str:
    """Run ``wascompress ARGS`` in this process (the same parser and code as the command); its stdout."""
    code = main(list(args))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


@pytest.mark.parametrize("factory", ["torchvision.models:resnet18", "torchvision.models:mobilenet_v3_small"])
def test_train_export_verify_profile_at_its_own_size(factory, image_folder, tmp_path, capsys):
    run = tmp_path / "run"
    cli(capsys, "train", "--out", str(run), "--model", factory, "--dataset", "imagefolder", "--data-dir",
        str(image_folder), "--image-size", str(SIZE), "--epochs", "1", "--batch-size", "10", "--val-size", "4",
        "--bn-batches", "1", "--crop", "0.4", "0.6", "--translate", "0.3", "--lr", "0.01")
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["image_size"] == [SIZE, SIZE] and config["sizes"] == {"train": 20, "val": 4, "test": 6}
    checkpoint = torch.load(run / "best.pt", weights_only=True)
    assert checkpoint["train_config"]["image_size"] == [SIZE, SIZE]
    assert checkpoint["dataset"]["image_size"] == [SIZE, SIZE] and checkpoint["model"]["name"] == factory

    out = cli(capsys, "evaluate", str(run / "best.pt"), "--mode", "aom", "dom", "--shift", "translate:0.1")
    rows = [line.split()[:3] for line in out.splitlines()[1:]]  # the 6 test images, at 64x64
    assert rows == [["aom", "-", "none"], ["aom", "-", "translate:0.1"], ["dom", "0", "none"], ["dom", "0", "translate:0.1"]]

    files = {"aom": tmp_path / "aom.onnx", "dense": tmp_path / "dense" / "dom.onnx",
             "pruned": tmp_path / "pruned" / "dom.onnx"}
    for path in files.values():
        path.parent.mkdir(exist_ok=True)
    cli(capsys, "export", str(run / "best.pt"), "--out", str(files["aom"]))
    for fmt in ("dense", "pruned"):
        out = cli(capsys, "export", str(run / "best.pt"), "--mode", "dom", "--seed", "0", "--format", fmt,
                  "--out", str(files[fmt]))
        assert f"DOM seed 0 {fmt} at {SIZE}x{SIZE}" in out
    reports = {k: json.loads(p.with_suffix(".json").read_text()) for k, p in files.items()}
    for key, path in files.items():
        dims = [d.dim_value for d in onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[1:]]
        assert dims == [3, SIZE, SIZE] and reports[key]["input_shape"] == [3, SIZE, SIZE]
        assert reports[key]["verification"]["top1_identical"]
    assert reports["pruned"]["cost"]["macs"] < reports["dense"]["cost"]["macs"] == reports["aom"]["cost"]["macs"]

    # the pruned DOM computes what the dense DOM computes, on the run's real test images
    import onnxruntime as ort

    test = load_dataset("imagefolder", image_folder, train=False, image_size=SIZE, workers=0)
    images = torch.cat([x for x, _ in BatchLoader(test, 6, shuffle=False)]).numpy()
    outputs = [ort.InferenceSession(str(files[k]), providers=["CPUExecutionProvider"]).run(None, {"input": images})[0]
               for k in ("dense", "pruned")]
    scale = max(1.0, float(np.abs(outputs[0]).max()))
    assert float(np.abs(outputs[0] - outputs[1]).max()) / scale <= 1e-4
    assert (outputs[0].argmax(1) == outputs[1].argmax(1)).all()

    json_path = tmp_path / "profile.json"
    cli(capsys, "profile", *map(str, files.values()), "--batch-sizes", "1", "--runs", "2", "--warmup", "1",
        "--threads", "1", "--json", str(json_path))
    profiled = json.loads(json_path.read_text())
    assert [m["name"] for m in profiled["models"]] == ["aom", "dense/dom", "pruned/dom"]
    assert profiled["input_shape"] == [3, SIZE, SIZE]
    aom, dense, pruned = profiled["models"]
    assert pruned["macs"] == reports["pruned"]["cost"]["macs"] < dense["macs"] == aom["macs"]
    assert all(m["thop_match"] for m in profiled["models"])


def test_timm_model_trains_exports_and_profiles_from_its_checkpoint_alone(image_folder, tmp_path, capsys):
    """``--model timm:NAME`` with ``--model-kwargs``: the checkpoint records both, so export, evaluate and
    profile rebuild the model with no model flags."""
    run = tmp_path / "run"
    cli(capsys, "train", "--out", str(run), "--model", "timm:resnet26d", "--model-kwargs", '{"drop_rate": 0.1}',
        "--dataset", "imagefolder", "--data-dir", str(image_folder), "--image-size", str(SIZE), "--epochs", "1",
        "--batch-size", "10", "--val-size", "4", "--bn-batches", "1", "--crop", "0.4", "0.6", "--dom-seed", "1",
        "--lr", "0.01")
    checkpoint = torch.load(run / "best.pt", weights_only=True)
    assert checkpoint["model"]["name"] == "timm:resnet26d" and checkpoint["model"]["kwargs"] == {"drop_rate": 0.1}
    aom, dom = tmp_path / "aom.onnx", tmp_path / "dom.onnx"
    cli(capsys, "export", str(run / "best.pt"), "--out", str(aom))
    out = cli(capsys, "export", str(run / "best.pt"), "--mode", "dom", "--out", str(dom))  # the trained DOM seed
    assert f"DOM seed 1 pruned at {SIZE}x{SIZE}" in out
    reports = [json.loads(p.with_suffix(".json").read_text()) for p in (aom, dom)]
    assert all(r["verification"]["top1_identical"] for r in reports)
    assert reports[1]["cost"]["macs"] < 0.8 * reports[0]["cost"]["macs"]
    json_path = tmp_path / "profile.json"
    cli(capsys, "profile", str(aom), str(dom), "--batch-sizes", "1", "--runs", "2", "--warmup", "1", "--threads", "1",
        "--json", str(json_path))
    profiled = json.loads(json_path.read_text())
    assert [m["macs"] for m in profiled["models"]] == [r["cost"]["macs"] for r in reports]
    assert all(m["thop_match"] for m in profiled["models"])
