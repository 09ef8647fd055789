"""INT8 exports: quantized by ONNX Runtime, verified by top-1 agreement with FP32, reproducible to the byte,
refused (nothing written) when they disagree or cannot be calibrated."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tests.export.runs import WAS_RUN, one_torch_thread, trained_run  # noqa: F401
from wascompress.checkpoint import load_checkpoint
from wascompress.data import BatchLoader
from wascompress.data.run_data import checkpoint_splits
from wascompress.errors import ConfigError, DataError
from wascompress.export import quantize
from wascompress.export.exporter import ExportConfig, export_model
from wascompress.export.from_checkpoint import export_checkpoint
from wascompress.export.onnx_graph import ExportError, session
from wascompress.export.quantize import QuantizeConfig
from wascompress.models import create_model

# The tiny test model (3 epochs on the synthetic task, ~70 % test accuracy) has many near-ties between its
# top two classes, and INT8 rounding flips some of them: it agrees with FP32 on 95-98 % of its 200
# validation images (measured with every calibration method), so the tests hold it to 90 %, not the
# default 99 % that a trained CIFAR model is held to.
TINY_AGREEMENT = 0.9
INT8 = QuantizeConfig(calibration_images=128, min_agreement=TINY_AGREEMENT)


@pytest.fixture(scope="module")
def was_run(tmp_path_factory) -> Path:
    return trained_run(tmp_path_factory, WAS_RUN)


def top1(path: Path, images: np.ndarray) -> np.ndarray:
    return session(path.read_bytes()).run(None, {"input": images})[0].argmax(1)


@pytest.mark.parametrize("mode,seed", [("aom", None), ("dom", 0)])
def test_quantized_export_runs_on_onnx_runtime_and_agrees_with_fp32(tmp_path, was_run, mode, seed):
    checkpoint = was_run / "best.pt"
    fp32, int8 = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    export_checkpoint(checkpoint, fp32, ExportConfig(mode=mode, seed=seed, format="pruned"))
    report = export_checkpoint(checkpoint, int8, ExportConfig(mode=mode, seed=seed, format="pruned", quantize=INT8))
    # a QDQ graph with INT8 weights, ONNX Runtime runs it
    proto = onnx.load(int8)
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    dequantized = {n.output[0] for n in proto.graph.node if n.op_type == "DequantizeLinear"
                   and n.input[0] in {i.name for i in proto.graph.initializer if i.data_type == onnx.TensorProto.INT8}}
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    assert len(convs) > 2 and all(n.input[1] in dequantized for n in convs)  # INT8 weights in every conv
    # agreement with the FP32 export of the same mode and seed, on held-out (test) images
    test = checkpoint_splits(load_checkpoint(checkpoint)).test
    images, labels = held_out(test)
    agreement = float((top1(int8, images) == top1(fp32, images)).mean())
    assert agreement >= TINY_AGREEMENT
    # the report records the agreement and the test accuracy of both, and so does the file
    q = report["quantization"]
    assert report["precision"] == "int8" and q["agreement"] >= TINY_AGREEMENT
    assert q["validation"]["images"] == 200 and q["test"]["images"] == len(test)
    assert q["test"]["agreement"] == pytest.approx(agreement)
    assert q["fp32_test_top1"] == pytest.approx(float((top1(fp32, images) == labels).mean()))
    assert q["int8_test_top1"] == pytest.approx(float((top1(int8, images) == labels).mean()))
    meta = {p.key: p.value for p in proto.metadata_props}
    recorded = json.loads(meta["wascompress.quantize"])
    assert recorded["agreement"] == q["agreement"] and recorded["int8_test_top1"] == q["int8_test_top1"]
    assert recorded["fp32_sha256"] == json.loads(fp32.with_suffix(".json").read_text())["sha256"]
    assert meta["wascompress.mode"] == mode
    assert json.loads(int8.with_suffix(".json").read_text())["quantization"]["agreement"] == q["agreement"]


def held_out(data) -> tuple[np.ndarray, np.ndarray]:
    """Normalised images and labels of a split, as the exporter feeds them."""
    batches = list(BatchLoader(data, 256, shuffle=False))
    return np.concatenate([b[0].numpy() for b in batches]), np.concatenate([b[1].numpy() for b in batches])


def test_reexport_is_byte_identical(tmp_path, was_run):
    config = ExportConfig(mode="dom", seed=0, quantize=INT8)
    first = export_checkpoint(was_run / "best.pt", tmp_path / "a.onnx", config)
    second = export_checkpoint(was_run / "best.pt", tmp_path / "b.onnx", config)
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()
    assert first["sha256"] == second["sha256"]


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_every_calibration_method_gives_a_verified_file(tmp_path, was_run, method):
    config = ExportConfig(mode="dom", seed=0, quantize=QuantizeConfig(calibration=method, calibration_images=64,
                                                                      min_agreement=TINY_AGREEMENT))
    report = export_checkpoint(was_run / "best.pt", tmp_path / "m.onnx", config)
    assert report["quantization"]["calibration"] == method and report["quantization"]["calibration_images"] == 64


def zeroed_weights(original):
    """A quantizer that loses every weight: all logits equal the bias, so top-1 no longer follows FP32."""

    def broken(fp32, calibration, config):
        proto = original(fp32, calibration, config)
        for init in proto.graph.initializer:
            if init.data_type == onnx.TensorProto.INT8 and len(init.dims) > 1:
                init.CopyFrom(numpy_helper.from_array(np.zeros(tuple(init.dims), np.int8), init.name))
        return proto

    return broken


@pytest.mark.parametrize("existing", [False, True])
def test_a_file_that_disagrees_is_not_written(tmp_path, was_run, monkeypatch, existing):
    monkeypatch.setattr(quantize, "quantize_onnx", zeroed_weights(quantize.quantize_onnx))
    out = tmp_path / "m.onnx"
    if existing:  # --overwrite asked for: no stale file may stay that looks like the new one
        out.write_bytes(b"old")
        out.with_suffix(".json").write_text("old\n")
    with pytest.raises(ExportError, match=r"INT8 verification failed: top-1 agrees with FP32 on .* \(< 90%\)"):
        export_checkpoint(was_run / "best.pt", out, ExportConfig(mode="dom", seed=0, quantize=INT8), overwrite=existing)
    assert not list(tmp_path.iterdir())


def test_a_threshold_of_100_percent_refuses_a_near_tie_model(tmp_path, was_run):
    # the tiny model's INT8 file flips a few near-ties (see TINY_AGREEMENT): all 200 must agree here
    config = ExportConfig(mode="aom", quantize=QuantizeConfig(calibration_images=128, min_agreement=1.0))
    with pytest.raises(ExportError, match="INT8 verification failed"):
        export_checkpoint(was_run / "best.pt", tmp_path / "m.onnx", config)
    assert not list(tmp_path.iterdir())


def test_quantization_needs_calibration_data(tmp_path, was_run):
    # the API without data
    model = create_model("tiny")
    with pytest.raises(ConfigError, match="--quantize int8 .* pass --data-dir"):
        export_model(model, tmp_path / "m.onnx", ExportConfig(quantize=INT8))
    # a checkpoint whose data set is not where it says
    checkpoint = load_checkpoint(was_run / "best.pt")
    moved = {**checkpoint.train_config, "dataset": "cifar10", "data_dir": str(tmp_path / "none")}
    replace(checkpoint, train_config=moved).save(tmp_path / "moved.pt")
    with pytest.raises(DataError, match="--quantize int8 calibrates on the run's training images"):
        export_checkpoint(tmp_path / "moved.pt", tmp_path / "m.onnx", ExportConfig(quantize=INT8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["moved.pt"]


@pytest.mark.parametrize("settings,fragment", [
    ({"dtype": "int4"}, "--quantize int4 is not supported; choose from: int8"),
    ({"calibration": "kl"}, "--calibration must be one of"),
    ({"calibration_images": 0}, "--calibration-images must be a positive integer"),
    ({"min_agreement": 1.5}, "--min-agreement"),
])
def test_bad_settings_are_one_line_errors(settings, fragment):
    with pytest.raises(ConfigError, match=fragment):
        QuantizeConfig(**settings)


def test_sparse_initializers_do_not_combine_with_int8():
    with pytest.raises(ConfigError, match="--sparse-initializers"):
        ExportConfig(sparse_initializers=True, quantize=INT8)
