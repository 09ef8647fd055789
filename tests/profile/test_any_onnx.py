"""The profiler on ONNX files that did not come from wascompress: dynamic height and width, other input
names and types, several inputs, files with the same stem, convs whose weights are computed."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import assert_one_line_error, run_cli
from wascompress.errors import ConfigError
from wascompress.models import create_model
from wascompress.models.cost import count_macs
from wascompress.profile import formats
from wascompress.profile.latency import TimingPlan
from wascompress.profile.onnx_cost import ModelFileError, onnx_cost
from wascompress.profile.profiler import ProfileRequest, distinct_labels, profile

FAST = TimingPlan(warmup=1, runs=2)
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def export(model: torch.nn.Module, path: Path, input_name: str = "input", dynamic_hw: bool = False,
           size: int = 32) -> Path:
    """``model`` as a foreign exporter would write it: its own input name, optionally dynamic H and W."""
    axes = {0: "batch", 2: "height", 3: "width"} if dynamic_hw else {0: "batch"}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.zeros(1, 3, size, size),), buffer, dynamo=False, opset_version=17,
                          input_names=[input_name], output_names=["out"],
                          dynamic_axes={input_name: axes, "out": {0: "batch"}})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return path


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return create_model("tiny")


def test_dynamic_height_and_width_need_the_image_size(tiny, tmp_path, run_main):
    path = export(tiny, tmp_path / "dynamic.onnx", dynamic_hw=True)
    with pytest.raises(ConfigError, match=r"symbolic dimensions .*height, width.*give --image-size HEIGHT WIDTH"):
        onnx_cost(path)
    cost = onnx_cost(path, (64, 48))  # the channel count comes from the graph
    assert cost.macs == count_macs(tiny, (3, 64, 48)) and cost.input_shape == (1, 3, 64, 48)
    report = profile(ProfileRequest(models=(path,), batch_sizes=(2,), plan=FAST, image_size=(64, 48)))
    assert report["models"][0]["macs"] == cost.macs and report["input_shape"] == [3, 64, 48]

    result = run_main("profile", str(path), "--runs", "2", "--batch-sizes", "1")
    assert_one_line_error(result, "--image-size HEIGHT WIDTH")
    result = run_cli("profile", str(path), "--runs", "2", "--batch-sizes", "1", "--image-size", "64", "48",
                     env=ONE_THREAD)
    assert result.returncode == 0, result.stderr
    assert f"{cost.macs / 1e6:.2f}M" in result.stdout
    for old in ("3,64,48", "3x64x48"):  # the old option, kept for scripts
        result = run_main("profile", str(path), "--runs", "1", "--batch-sizes", "1", "--input-shape", old)
        assert result.returncode == 0 and f"{cost.macs / 1e6:.2f}M" in result.stdout, result.stderr
    # it took one value: the models after it stay positional, as in scripts written for it
    other = tmp_path / "other.onnx"
    other.write_bytes(path.read_bytes())
    result = run_main("profile", "--input-shape", "3,64,48", str(path), str(other), "--runs", "1", "--batch-sizes", "1")
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith(("dynamic ", "other "))]
    assert len(rows) == 2 and all(f"{cost.macs / 1e6:.2f}M" in row for row in rows), result.stdout
    with pytest.raises(ConfigError, match=r"image_size is \(height, width\)"):
        onnx_cost(path, (3, 64, 48))  # the old positional (C, H, W) is refused, not misread


def test_a_symbolic_channel_count_needs_the_input_shape(tmp_path, run_main):
    """Where the graph does not fix the channel count either, the image size is not enough: the error
    names the option that also gives the channels."""
    conv = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3])
    weights = numpy_helper.from_array(np.ones((4, 2, 3, 3), np.float32), "w")
    path = _graph([helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", "c", "h", "w"])], [conv], [weights],
                  tmp_path / "any.onnx")
    for size in (None, (16, 16)):
        with pytest.raises(ConfigError, match=r"channel count is symbolic too: give --input-shape C,"):
            onnx_cost(path, size)
    assert onnx_cost(path, (16, 16), channels=2).macs == 14 * 14 * 4 * 2 * 9
    result = run_main("profile", str(path), "--runs", "1", "--batch-sizes", "1", "--image-size", "16")
    assert_one_line_error(result, "--input-shape C,16,16")
    result = run_main("profile", str(path), "--runs", "1", "--batch-sizes", "1", "--input-shape", "2,16,16")
    assert result.returncode == 0, result.stderr


def test_a_given_size_must_fit_the_fixed_dimensions(tiny, tmp_path, run_main):
    path = export(tiny, tmp_path / "fixed.onnx")
    with pytest.raises(ConfigError, match=r"image size 64x64 does not fit input 'input'"):
        profile(ProfileRequest(models=(path,), batch_sizes=(1,), plan=FAST, image_size=(64, 64)))
    with pytest.raises(ConfigError, match=r"image size 32x32 and 1 channels does not fit input 'input'"):
        profile(ProfileRequest(models=(path,), batch_sizes=(1,), plan=FAST, image_size=(32, 32), channels=1))
    result = run_main("profile", str(path), "--runs", "1", "--batch-sizes", "1", "--image-size", "32", "32")
    assert result.returncode == 0, result.stderr  # a size that agrees with the graph's is fine


def test_models_with_different_input_names_each_get_their_own(tiny, tmp_path):
    images = export(tiny, tmp_path / "a.onnx", input_name="images")
    plain = export(tiny, tmp_path / "b.onnx", input_name="input")
    report = profile(ProfileRequest(models=(images, plain), batch_sizes=(1, 3), plan=FAST))
    assert [m["input_name"] for m in report["models"]] == ["images", "input"]
    assert len(report["latency"]) == 4 and report["models"][1]["ratios"]["macs"] == 1.0


def test_same_stem_in_different_folders_are_two_rows(tiny, tmp_path, run_main):
    first = export(tiny, tmp_path / "a" / "dom.onnx")
    second = export(create_model("tiny", width=0.5), tmp_path / "b" / "dom.onnx")
    report = profile(ProfileRequest(models=(first, second), batch_sizes=(1,), plan=FAST))
    assert [m["name"] for m in report["models"]] == ["a/dom", "b/dom"]
    assert [r["model"] for r in report["latency"]] == ["a/dom", "b/dom"]
    rows = formats.rows(report)
    assert [r["path"] for r in rows] == [str(first), str(second)] and rows[0]["macs"] != rows[1]["macs"]
    result = run_cli("profile", str(first), str(second), "--runs", "2", "--batch-sizes", "1", "--labels", "wide,narrow",
                     env=ONE_THREAD)
    assert result.returncode == 0, result.stderr
    table = result.stdout.splitlines()
    assert table[2].startswith("wide ") and table[3].startswith("narrow ")
    assert_one_line_error(run_main("profile", str(first), str(second), "--labels", "one"), "--labels needs 2 distinct")


def test_distinct_labels():
    assert distinct_labels([Path("x/aom.onnx"), Path("x/dom.onnx")]) == ["aom", "dom"]
    assert distinct_labels([Path("r/a/dom.onnx"), Path("r/b/dom.onnx"), Path("r/aom.onnx")]) == ["a/dom", "b/dom", "aom"]
    assert distinct_labels([Path("p/a/dom.onnx"), Path("q/a/dom.onnx")]) == ["p/a/dom", "q/a/dom"]
    with pytest.raises(ConfigError, match="given twice"):
        distinct_labels([Path("a/dom.onnx"), Path("a/dom.onnx")])


def _graph(inputs, nodes, initializers, path: Path, output_type: int = TensorProto.FLOAT) -> Path:
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", output_type, None)],
                              initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def test_computed_conv_weights_are_not_counted_never_zero(tmp_path):
    """conv2's weight is computed in the graph (initializer x scale): its cost is unknown, not 0."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((4, 4, 3, 3)).astype(np.float32), "w2")
    scale = numpy_helper.from_array(np.array(0.5, dtype=np.float32), "scale")
    nodes = [helper.make_node("Conv", ["x", "w1"], ["h"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Mul", ["w2", "scale"], ["w2s"], name="scale_w2"),
             helper.make_node("Conv", ["h", "w2s"], ["y"], name="conv2", pads=[1, 1, 1, 1])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 8, 8])
    path = _graph([x], nodes, [w1, w2, scale], tmp_path / "computed.onnx")
    cost = onnx_cost(path)
    assert cost.uncounted == ["conv2"] and cost.macs == 8 * 8 * 4 * 3 * 9  # conv1 only: a lower bound
    report = profile(ProfileRequest(models=(path,), batch_sizes=(1,), plan=FAST))
    table = formats.to_table(report)
    assert f"{cost.macs / 1e6:.2f}M+" in table and "1 op(s) not counted" in table and "conv2" in table
    assert formats.rows(report)[0]["uncounted_ops"] == 1


def test_several_inputs_or_integer_input_is_one_line(tmp_path, run_main):
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 4])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 4])
    two = _graph([a, b], [helper.make_node("Add", ["a", "b"], ["y"])], [], tmp_path / "two.onnx")
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, ["n", 8])
    table = numpy_helper.from_array(np.zeros((100, 4), dtype=np.float32), "table")
    tokens = _graph([ids], [helper.make_node("Gather", ["table", "ids"], ["y"])], [table], tmp_path / "tokens.onnx")
    for path, fragment in ((two, "has 2 inputs ('a', 'b')"), (tokens, "input 'ids' is int64")):
        with pytest.raises(ModelFileError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
            profile(ProfileRequest(models=(path,), batch_sizes=(1,), plan=FAST))
        assert_one_line_error(run_main("profile", str(path), "--runs", "1"), fragment)


def test_half_precision_input_is_fed_half(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["n", 2, 4, 4])
    w = numpy_helper.from_array(np.ones((3, 2, 1, 1), dtype=np.float16), "w")
    path = _graph([x], [helper.make_node("Conv", ["x", "w"], ["y"], name="c")], [w], tmp_path / "half.onnx",
                  TensorProto.FLOAT16)
    report = profile(ProfileRequest(models=(path,), batch_sizes=(2,), plan=FAST))
    assert report["models"][0]["input_dtype"] == "float16" and report["models"][0]["macs"] == 3 * 2 * 16
