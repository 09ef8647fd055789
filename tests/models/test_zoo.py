"""Tests of the CIFAR model zoo: every registered model builds, runs, scales with ``width``, uses
only plain modules, survives torch-pruning and matches its ONNX export."""

from __future__ import annotations

import onnxruntime as ort
import pytest
import torch
import torch_pruning as tp
from torch import nn

from wascompress.errors import ConfigError
from wascompress.models import create_model, list_models
from wascompress.models.layers import scaled

MODEL_NAMES = list_models()
# Smallest width each model is tested at: divisor-8 models cannot shrink much below 0.25 anyway,
# and the tiny model already has only 8 and 16 channels at width 1.
SMALL_WIDTH = {"vgg16": 0.125, "resnet18": 0.125, "resnet34": 0.125, "googlenet": 0.125}


def small_model(name: str, width: float | None = None) -> nn.Module:
    """The model ``name`` with 7 classes at a small width, in eval mode, with a fixed seed."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=7, width=width or SMALL_WIDTH.get(name, 0.25))
    return model.eval()


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_zoo_has_all_models() -> None:
    expected = {
        "vgg16", "resnet18", "resnet34", "googlenet", "mobilenetv2", "efficientnet_lite0", "tiny"
    }
    assert expected <= set(MODEL_NAMES)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_shape_and_finite(name: str) -> None:
    model = small_model(name)
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_width_reduces_parameters(name: str) -> None:
    half = count_params(create_model(name, num_classes=7, width=0.5))
    full = count_params(create_model(name, num_classes=7, width=1.0))
    assert half < full


def test_unknown_model_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="nope"):
        create_model("nope")


@pytest.mark.parametrize("width", [0, -0.5, 5.0, "1", True, None])
def test_bad_width_raises_config_error(width: object) -> None:
    with pytest.raises(ConfigError, match="width"):
        create_model("tiny", width=width)  # type: ignore[arg-type]


@pytest.mark.parametrize("num_classes", [0, -3, 2.5, True, "10"])
def test_bad_num_classes_raises_config_error(num_classes: object) -> None:
    with pytest.raises(ConfigError, match="num_classes"):
        create_model("tiny", num_classes=num_classes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("channels", "width", "divisor", "expected"),
    [
        (64, 1.0, 1, 64),
        (64, 0.25, 1, 16),
        (3, 0.1, 1, 1),
        (32, 0.25, 8, 8),
        (1280, 1.0, 8, 1280),
        (24, 0.5, 8, 16),
        (96, 0.35, 8, 32),
        (16, 0.01, 8, 8),
    ],
)
def test_scaled_rounds_to_divisor(channels: int, width: float, divisor: int, expected: int) -> None:
    result = scaled(channels, width, divisor)
    assert result == expected
    assert result % divisor == 0


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_plain_modules_and_large_kernels(name: str) -> None:
    model = small_model(name)
    convs = [m for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)]
    assert convs, "model has no convolutions"
    assert all(type(m) is nn.Conv2d for m in convs)
    assert any(max(m.kernel_size) >= 3 for m in convs[1:]), "no k>=3 conv besides the first"
    activations = [m for m in model.modules() if isinstance(m, (nn.ReLU, nn.ReLU6))]
    assert activations and not any(m.inplace for m in activations)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_torch_pruning_dependency_graph(name: str) -> None:
    model = small_model(name)
    example = torch.randn(1, 3, 32, 32)
    classifier = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    pruner = tp.pruner.MagnitudePruner(
        model,
        example,
        importance=tp.importance.MagnitudeImportance(p=2),
        pruning_ratio=0.25,
        ignored_layers=[classifier],
    )
    before = count_params(model)
    pruner.step()
    assert count_params(model) < before
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 7)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # dynamo=False is the legacy exporter
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_onnx_export_matches_pytorch(name: str, tmp_path) -> None:
    model = small_model(name, width=0.25)
    x = torch.randn(2, 3, 32, 32)
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(
        model,
        (x,),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["input"],
        output_names=["logits"],
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {"input": x.numpy()})
    with torch.no_grad():
        torch_out = model(x).numpy()
    assert onnx_out.shape == (2, 7)
    assert abs(onnx_out - torch_out).max() <= 1e-4


@pytest.mark.parametrize("name,kwargs", [("timm:resnet10t", {"drop_rate": 0.2}),
                                         ("torchvision:mobilenet_v3_small", {"dropout": 0.1})])
def test_library_models_by_name_with_kwargs(name: str, kwargs: dict) -> None:
    model = create_model(name, num_classes=7, kwargs=kwargs)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 7)


@pytest.mark.parametrize("name,kwargs,fragment", [
    ("timm:resnet10t", {"pretrained": True}, "never downloads weights; start from trained weights with --init-from"),
    ("torchvision:resnet18", {"weights": "DEFAULT"}, "never downloads weights"),
    ("timm:no_such_net", {}, "timm has no model 'no_such_net'"),
    ("torchvision:no_such_net", {}, "torchvision has no model 'no_such_net'"),
    ("timm:resnet10t", {"no_such_argument": 1}, "cannot build model 'timm:resnet10t'"),
    ("resnet18", {"no_such_argument": 1}, "cannot build model 'resnet18'"),
])
def test_library_model_mistakes_are_config_errors(name: str, kwargs: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        create_model(name, num_classes=10, kwargs=kwargs)
