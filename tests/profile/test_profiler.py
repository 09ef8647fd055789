"""The profiler end to end on tiny exports: ratios against the first model, formats that agree, errors."""

from __future__ import annotations

import csv
import io
import json

import pytest
import torch

from tests.conftest import assert_one_line_error
from wascompress.export.exporter import ExportConfig, export_model
from wascompress.models import create_model
from wascompress.profile import formats
from wascompress.profile.latency import TimingPlan
from wascompress.profile.profiler import ProfileRequest, profile
from wascompress.was import WASConfig, apply_was_


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("exports")
    torch.manual_seed(0)
    model = create_model("tiny")
    apply_was_(model, WASConfig(crop=(0.4, 0.6), translate=0.3, filter=(0.5, 0.9)))
    calibration = [torch.randn(16, 3, 32, 32) for _ in range(2)]
    export_model(model, folder / "aom.onnx", ExportConfig(mode="aom"))
    export_model(model, folder / "dom.onnx", ExportConfig(mode="dom", seed=1), calibration=calibration)
    export_model(model, folder / "sparse.onnx", ExportConfig(mode="dom", seed=1, format="dense"), calibration=calibration)
    return folder


@pytest.fixture(scope="module")
def report(exports):
    request = ProfileRequest(models=(exports / "aom.onnx", exports / "dom.onnx", exports / "sparse.onnx"),
                             batch_sizes=(1, 4), plan=TimingPlan(warmup=1, runs=5))
    return profile(request)


def test_costs_ratios_and_thop_cross_check(report):
    aom, dom, sparse = report["models"]
    assert report["reference"] == "aom"
    assert dom["macs"] < aom["macs"]
    assert sparse["macs"] == aom["macs"] and sparse["effective_macs"] < aom["effective_macs"]
    assert sparse["sparsity"] > aom["sparsity"] + 0.3  # the SW zeros (untrained biases are zero in both)
    for model in report["models"]:
        assert model["ratios"]["macs"] == model["macs"] / aom["macs"]
        assert model["thop_match"], model["name"]  # the export's thop count equals the graph's
    for row in report["latency"]:
        reference = next(r for r in report["latency"] if r["model"] == "aom" and r["batch"] == row["batch"])
        assert row["p50_ratio"] == pytest.approx(row["p50_ms"] / reference["p50_ms"])
        assert row["runs"] == 5 and row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]
        assert row["throughput_ips"] == pytest.approx(row["batch"] / row["p50_ms"] * 1e3)


def test_json_markdown_and_csv_carry_the_same_numbers(report):
    data = json.loads(formats.to_json(report))
    assert data["models"][1]["macs"] == report["models"][1]["macs"]
    rows = list(csv.DictReader(io.StringIO(formats.to_csv(report))))
    assert len(rows) == len(report["latency"]) == 3 * 2
    for row, lat in zip(rows, report["latency"]):
        model = next(m for m in report["models"] if m["name"] == row["model"])
        assert int(row["macs"]) == model["macs"]
        assert float(row["p50_ms"]) == pytest.approx(lat["p50_ms"])
    markdown = formats.to_markdown(report)
    for model in report["models"]:
        assert f"{model['macs'] / 1e6:.2f}M" in markdown
    for lat in report["latency"]:
        assert f"{lat['p50_ms']:.3f}" in markdown


def test_plot_is_a_png(report, tmp_path):
    path = tmp_path / "plot.png"
    formats.plot(report, path)
    from PIL import Image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Image.open(path).size[0] > 300


def test_missing_provider(exports, run_main):
    result = run_main("profile", str(exports / "aom.onnx"), "--providers", "cuda", "--runs", "2")
    assert_one_line_error(result, "execution provider cuda")


def test_not_a_model_and_different_input_shapes(exports, tmp_path, run_main):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00\x01 not a model")
    result = run_main("profile", str(exports / "aom.onnx"), str(junk), "--runs", "2")
    assert_one_line_error(result, "junk.onnx")
    export_model(create_model("tiny"), tmp_path / "big.onnx", ExportConfig(mode="aom", input_shape=(3, 48, 48)))
    result = run_main("profile", str(exports / "aom.onnx"), str(tmp_path / "big.onnx"), "--runs", "2")
    assert_one_line_error(result, "different input shapes")


@pytest.mark.parametrize("graph,extra,fragment", [
    (1_000, {}, "matches thop's count"),
    (1_100, {}, "by +100 (+10.00%): the graph counts every Conv, Gemm and MatMul"),
    (900, {}, "by -100 (-10.00%): thop also counts"),
    (900, {"uncounted": ["Foo"]}, "lower bound"),
])
def test_a_mac_count_that_differs_from_thop_says_why(graph, extra, fragment):
    """Catches the bare "DIFFERS from thop" line (no size, no reason) the profiler used to print."""
    from wascompress.profile.formats import thop_line

    line = thop_line({"name": "m", "macs": graph, "thop_macs": 1_000, "thop_match": graph == 1_000, **extra})
    assert fragment in line and "DIFFERS" not in line


def test_export_and_profile_give_one_parameter_count(tmp_path):
    """Catches an export report whose parameter count disagrees with the profiler's for the same file without a
    word (was: PyTorch's count, BatchNorm unfolded, against the file's)."""
    from wascompress.profile.profiler import describe_model

    model = create_model("tiny", num_classes=10)
    report = export_model(model, tmp_path / "m.onnx", ExportConfig(mode="aom"))
    profiled = describe_model(tmp_path / "m.onnx")
    assert report["graph_cost"]["params"] == profiled["params"] and report["graph_cost"]["macs"] == profiled["macs"]
    assert report["cost"]["params"] != profiled["params"] and "BatchNorm" in report["graph_cost"]["note"]
