"""export_model on every zoo model: AOM dense, DOM pruned and DOM dense files verify against PyTorch,
pruning really lowers the MACs, exports are byte-reproducible, and the file carries its metadata."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from wascompress.errors import ConfigError
from wascompress.export.exporter import ExportConfig, export_model
from wascompress.export.onnx_graph import run_onnx
from wascompress.models import create_model, list_models
from wascompress.models.cost import count_macs
from wascompress.was import WASConfig, apply_was_, recalibrate_bn_, shadow_mode, use_dom_

WAS = WASConfig(crop=(0.4, 0.6), translate=0.3, filter=(0.5, 0.9))
SHAPE = (3, 32, 32)


def width_of(name: str) -> float:
    return 0.125 if name in ("vgg16", "resnet18", "resnet34", "googlenet") else 0.25


def was_model(name: str, was: WASConfig = WAS, width: float | None = None) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model(name, width=width if width is not None else width_of(name))
    apply_was_(model, was)
    return model.eval()


def dense_macs(name: str, width: float | None = None) -> int:
    return count_macs(create_model(name, width=width if width is not None else width_of(name)), SHAPE)


def calibration() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    return [torch.randn(3, *SHAPE, generator=generator) for _ in range(2)]


def check_inputs() -> torch.Tensor:
    """Inputs the exporter's own verification never saw."""
    return torch.randn(2, *SHAPE, generator=torch.Generator().manual_seed(2024))


def assert_matches(path: Path, reference: torch.nn.Module) -> None:
    """The file, run by ONNX Runtime, computes what ``reference`` computes in PyTorch."""
    x = check_inputs()
    with torch.no_grad():
        expected = reference(x).numpy()
    got = run_onnx(path.read_bytes(), x.numpy())
    assert got.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max()))
    assert float(np.abs(got - expected).max()) / scale <= 1e-4
    assert (got.argmax(1) == expected.argmax(1)).all()


def dom_reference(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """DOM seed ``seed`` in PyTorch, built with the WAS API (not the exporter's own helper)."""
    reference = copy.deepcopy(model)
    use_dom_(reference, seed)
    recalibrate_bn_(reference, calibration())
    return reference.eval()


def assert_verified(report: dict) -> None:
    verification = report["verification"]
    assert verification["top1_identical"] and verification["max_abs_diff_scaled"] <= verification["tolerance"]
    assert verification["batch_sizes"] == [2, 3] and verification["inputs_checked"] == 5


@pytest.mark.parametrize("name", list_models())
def test_every_model_exports_aom_and_dom(tmp_path, name):
    model = was_model(name)
    dense = dense_macs(name)

    aom = export_model(model, tmp_path / "aom.onnx", ExportConfig(mode="aom"))
    assert (aom["mode"], aom["format"], aom["seed"]) == ("aom", "dense", None)
    assert_verified(aom)
    assert aom["cost"]["macs"] == aom["cost_before_pruning"]["macs"] == dense
    with shadow_mode(model, "aom"):
        assert_matches(tmp_path / "aom.onnx", model)

    pruned = export_model(model, tmp_path / "dom.onnx", ExportConfig(mode="dom", seed=1), calibration=calibration())
    assert (pruned["mode"], pruned["format"], pruned["seed"]) == ("dom", "pruned", 1)
    assert_verified(pruned)
    assert pruned["cost_before_pruning"]["macs"] == dense
    assert pruned["cost"]["macs"] < aom["cost"]["macs"], pruned["kernel_changes"]
    assert pruned["mac_ratio_vs_dense"] == pruned["cost"]["macs"] / dense
    # pruning only removes work on zero weights: the effective MACs do not grow
    assert pruned["cost"]["effective_macs"] <= pruned["cost_before_pruning"]["effective_macs"]
    reference = dom_reference(model, 1)
    assert_matches(tmp_path / "dom.onnx", reference)

    sparse = export_model(model, tmp_path / "dom_sparse.onnx", ExportConfig(mode="dom", seed=1, format="dense"),
                          calibration=calibration())
    assert_verified(sparse)
    assert sparse["cost"]["macs"] == dense and not sparse["kernel_changes"] and not sparse["filter_changes"]
    assert sparse["cost"]["effective_macs"] == pruned["cost_before_pruning"]["effective_macs"]
    assert_matches(tmp_path / "dom_sparse.onnx", reference)

    for report, file in ((aom, "aom.onnx"), (pruned, "dom.onnx"), (sparse, "dom_sparse.onnx")):
        data = (tmp_path / file).read_bytes()
        assert report["bytes"] == len(data) and report["sha256"] == hashlib.sha256(data).hexdigest()
        assert json.loads((tmp_path / file).with_suffix(".json").read_text()) == json.loads(json.dumps(report))


@pytest.mark.parametrize("name,width", [("tiny", 0.125), ("resnet18", 0.125)])
@pytest.mark.parametrize("was", [WASConfig(crop=(0.4, 0.6)), WASConfig(crop=(0.4, 0.6), dom_align=True),
                                 WASConfig(translate=0.3), WASConfig(filter=(0.5, 0.9))],
                         ids=["crop", "aligned-crop", "translate", "filter"])
def test_each_transform_alone_lowers_the_pruned_macs(tmp_path, name, width, was):
    model = was_model(name, was, width)
    # these layers have 1-16 channels: no channel alignment, or no filter could go
    report = export_model(model, tmp_path / "dom.onnx", ExportConfig(mode="dom", seed=1, channel_align=1),
                          calibration=calibration())
    assert_verified(report)
    assert report["cost_before_pruning"]["macs"] == dense_macs(name, width)
    assert report["cost"]["macs"] < dense_macs(name, width)
    if was.filter is not None:
        assert any(c["removed"] for c in report["filter_changes"])
    else:  # zero borders only: kernels shrink, no filter is zero
        assert not report["filter_changes"]
        assert any(c["kernel_after"] != c["kernel_before"] for c in report["kernel_changes"])


def export_fresh(folder: Path, **config) -> tuple[bytes, str]:
    folder.mkdir()
    model = was_model("tiny")
    export_model(model, folder / "model.onnx", ExportConfig(**config), calibration=calibration())
    return (folder / "model.onnx").read_bytes(), (folder / "model.json").read_text()


@pytest.mark.parametrize("config", [dict(mode="dom", seed=3), dict(mode="dom", seed=3, format="dense")],
                         ids=["dom-pruned", "dom-dense"])
def test_exports_are_byte_identical(tmp_path, config):
    first = export_fresh(tmp_path / "a", **config)
    second = export_fresh(tmp_path / "b", **config)
    assert first[0] == second[0]
    assert first[1] == second[1]
    other_seed = export_fresh(tmp_path / "c", **{**config, "seed": 4}) if "seed" in config else None
    if other_seed is not None:
        assert other_seed[0] != first[0]


def test_export_inside_a_callers_no_grad_or_inference_mode_is_the_same_file(tmp_path):
    def export(name: str, caller_mode) -> tuple[bytes, dict]:
        model = was_model("resnet18", WASConfig(filter=(0.3, 0.6)), 0.5)
        with caller_mode():
            export_model(model, tmp_path / f"{name}.onnx", ExportConfig(mode="dom", seed=0), calibration=calibration())
        report = json.loads((tmp_path / f"{name}.json").read_text())
        return (tmp_path / f"{name}.onnx").read_bytes(), {k: v for k, v in report.items() if k != "file"}

    expected = export("plain", contextlib.nullcontext)
    assert any(c["removed"] for c in expected[1]["filter_changes"])  # torch-pruning's tracing ran
    assert export("no_grad", torch.no_grad) == expected
    assert export("inference", torch.inference_mode) == expected


def test_sparse_initializers_give_a_smaller_file_that_still_verifies(tmp_path):
    model = was_model("tiny", WASConfig(crop=(0.4, 0.5), filter=(0.5, 0.6)))
    config = dict(mode="dom", seed=0, format="dense")
    plain = export_model(model, tmp_path / "plain.onnx", ExportConfig(**config), calibration=calibration())
    small = export_model(model, tmp_path / "small.onnx", ExportConfig(**config, sparse_initializers=True),
                         calibration=calibration())
    assert small["sparse_initializers"]["enabled"] and small["sparse_initializers"]["initializers"]
    assert not plain["sparse_initializers"]["initializers"]
    assert small["bytes"] < plain["bytes"]
    assert (tmp_path / "small.onnx").stat().st_size < (tmp_path / "plain.onnx").stat().st_size
    assert_verified(small)
    proto = onnx.load(tmp_path / "small.onnx")
    assert len(proto.graph.sparse_initializer) == len(small["sparse_initializers"]["initializers"])
    assert_matches(tmp_path / "small.onnx", dom_reference(model, 0))
    x = check_inputs().numpy()
    assert np.array_equal(run_onnx((tmp_path / "small.onnx").read_bytes(), x),
                          run_onnx((tmp_path / "plain.onnx").read_bytes(), x))


def test_onnx_has_dynamic_batch_opset_and_metadata(tmp_path):
    model = was_model("tiny")
    report = export_model(model, tmp_path / "m.onnx", ExportConfig(mode="dom", seed=2), calibration=calibration(),
                          metadata={"note": "hello"})
    proto = onnx.load(tmp_path / "m.onnx")
    for value in (*proto.graph.input, *proto.graph.output):
        batch = value.type.tensor_type.shape.dim[0]
        assert batch.dim_param and not batch.HasField("dim_value"), value
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim[1:]] == list(SHAPE)
    opsets = {o.domain: o.version for o in proto.opset_import}
    assert opsets.get("", opsets.get("ai.onnx", 0)) >= 17 and report["opset"] >= 17
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["wascompress.mode"] == "dom" and props["wascompress.seed"] == "2"
    assert json.loads(props["wascompress.was"]) == WAS.to_dict()
    assert props["wascompress.macs"] == str(report["cost"]["macs"])
    assert props["wascompress.format"] == "pruned" and props["wascompress.note"] == "hello"
    assert props["wascompress.bn"].startswith("re-estimated") and "6 training images" in props["wascompress.bn"]
    assert [p.key for p in proto.metadata_props] == sorted(props)
    assert report["metadata"].keys() == props.keys()
    for key, value in props.items():  # the same values (JSON ones compared parsed: see the xfail below)
        assert report["metadata"][key] == value or json.loads(report["metadata"][key]) == json.loads(value), key
    x = torch.randn(5, *SHAPE)  # a batch size the verification did not use
    assert run_onnx((tmp_path / "m.onnx").read_bytes(), x.numpy()).shape == (5, 10)
    aom = export_model(model, tmp_path / "aom.onnx", ExportConfig())
    aom_props = {p.key: p.value for p in onnx.load(tmp_path / "aom.onnx").metadata_props}
    assert aom_props["wascompress.mode"] == "aom" and aom_props["wascompress.seed"] == ""
    assert aom["bn"].startswith("stored")


def test_report_metadata_is_the_files_metadata(tmp_path):
    report = export_model(was_model("tiny"), tmp_path / "m.onnx", ExportConfig())
    props = {p.key: p.value for p in onnx.load(tmp_path / "m.onnx").metadata_props}
    assert report["metadata"] == props


def test_export_leaves_the_model_alone(tmp_path):
    from wascompress.was.shadow import current_draws, has_was

    model = was_model("tiny")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = check_inputs()
    with torch.no_grad():
        before = model(x)
    export_model(model, tmp_path / "dom.onnx", ExportConfig(mode="dom", seed=0), calibration=calibration())
    export_model(model, tmp_path / "aom.onnx", ExportConfig())
    assert has_was(model) and all(d is None for d in current_draws(model).values())
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    with torch.no_grad():
        assert torch.equal(model(x), before)


def test_model_without_was_exports_aom_only(tmp_path):
    torch.manual_seed(0)
    model = create_model("tiny", width=0.25).eval()
    report = export_model(model, tmp_path / "plain.onnx", ExportConfig())
    assert report["was"] is None and json.loads(report["metadata"]["wascompress.was"]) is None
    assert_matches(tmp_path / "plain.onnx", model)
    with pytest.raises(ConfigError, match="WAS"):
        export_model(model, tmp_path / "dom.onnx", ExportConfig(mode="dom", seed=0), calibration=calibration())
    assert not (tmp_path / "dom.onnx").exists() and not (tmp_path / "dom.json").exists()


def test_dom_without_calibration_is_refused_unless_told(tmp_path):
    model = was_model("tiny")
    with pytest.raises(ConfigError, match="--no-recalibrate-bn"):
        export_model(model, tmp_path / "dom.onnx", ExportConfig(mode="dom", seed=0))
    assert not list(tmp_path.iterdir())
    report = export_model(model, tmp_path / "dom.onnx", ExportConfig(mode="dom", seed=0, recalibrate_bn=False))
    assert report["bn"].startswith("stored (not re-estimated")


def test_existing_output_needs_overwrite(tmp_path):
    model = was_model("tiny")
    out = tmp_path / "m.onnx"
    out.write_bytes(b"old")
    with pytest.raises(ConfigError, match="--overwrite"):
        export_model(model, out, ExportConfig())
    assert out.read_bytes() == b"old" and not out.with_suffix(".json").exists()
    export_model(model, out, ExportConfig(), overwrite=True)
    assert onnx.load(out).graph.node


@pytest.mark.parametrize("bad", [dict(mode="dom"), dict(mode="dom", seed=-1), dict(mode="dom", seed=True),
                                 dict(mode="aom", seed=0), dict(mode="xom"), dict(format="coo")])
def test_bad_export_config(bad):
    with pytest.raises(ConfigError):
        ExportConfig(**bad)


def test_output_named_json_is_refused_not_replaced_by_its_report(tmp_path):
    model = was_model("tiny")
    with pytest.raises(ConfigError, match=r"\.json"):
        export_model(model, tmp_path / "model.json", ExportConfig())
    assert not any(tmp_path.iterdir())


def test_existing_report_needs_overwrite(tmp_path):
    model = was_model("tiny")
    (tmp_path / "m.json").write_text("my own notes\n")
    try:
        export_model(model, tmp_path / "m.onnx", ExportConfig())
    except ConfigError:
        pass
    assert (tmp_path / "m.json").read_text() == "my own notes\n"


def test_store_sparse_makes_a_smaller_model_that_onnx_runtime_runs():
    """The COO storage itself is right (what fails above is only the checker): fewer bytes, same outputs."""
    from wascompress.export.onnx_graph import onnx_bytes, store_sparse_, to_onnx
    from wascompress.was import freeze_dom_

    model = freeze_dom_(was_model("tiny", WASConfig(crop=(0.4, 0.5), filter=(0.5, 0.6))), 0).eval()
    dense = onnx_bytes(to_onnx(model, SHAPE))
    proto = to_onnx(model, SHAPE)
    moved = store_sparse_(proto)
    assert moved and len(proto.graph.sparse_initializer) == len(moved)
    assert not set(moved) & {i.name for i in proto.graph.initializer}
    sparse = onnx_bytes(proto)
    assert len(sparse) < len(dense)
    onnx.checker.check_model(onnx.load_from_string(sparse))  # the basic check passes
    x = check_inputs().numpy()
    assert np.abs(run_onnx(sparse, x) - run_onnx(dense, x)).max() <= 1e-6


def test_filter_removal_keeps_channel_counts_aligned(tmp_path):
    model = was_model("resnet18", WASConfig(filter=(0.3, 0.6)), 0.5)
    report = export_model(model, tmp_path / "dom.onnx", ExportConfig(mode="dom", seed=0), calibration=calibration())
    assert_verified(report)
    removed = [c for c in report["filter_changes"] if c["removed"]]
    assert removed and all(c["filters_after"] % 16 == 0 for c in removed)
    assert report["cost"]["macs"] < report["cost_before_pruning"]["macs"]


class _Offset(torch.nn.Module):
    """``model``'s output plus a constant: a reference that differs from the export by a known amount."""

    def __init__(self, model: torch.nn.Module, offset: list[float]) -> None:
        super().__init__()
        self.model, self.offset = model, torch.tensor(offset)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) + self.offset


def test_verification_skips_top1_of_near_ties_but_not_real_differences():
    from wascompress.export.onnx_graph import ExportError, onnx_bytes, to_onnx, verify

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]]))  # two equal logits
        model[1].bias.zero_()
    data = onnx_bytes(to_onnx(model, (1, 2, 2)))
    inputs = [torch.randn(3, 1, 2, 2, generator=torch.Generator().manual_seed(0))]
    # PyTorch's top-1 is the second logit by 1e-6, ONNX Runtime's the first (an exact tie): within tolerance
    report = verify(data, _Offset(model, [0.0, 1e-6]), inputs, tolerance=1e-4)
    assert report["top1_near_ties_skipped"] == 3 and report["max_abs_diff_scaled"] <= 1e-4
    with pytest.raises(ExportError, match="differs from PyTorch"):  # a real difference is still refused
        verify(data, _Offset(model, [0.0, 0.5]), inputs, tolerance=1e-4)
