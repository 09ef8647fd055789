"""Shared building blocks of the CIFAR model zoo: channel scaling, the conv-BN-activation unit, the
inverted residual (MBConv) block and weight initialisation. Every architecture is assembled from
plain ``nn.Conv2d``, ``nn.BatchNorm2d`` and out-of-place activation modules, so that torch-pruning's
dependency graph and the ONNX exporter only ever see standard operators; the width multiplier is
applied to every channel count through :func:`scaled`.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "relu6": nn.ReLU6}


def scaled(channels: int, width: float, divisor: int = 1) -> int:
    """Return ``channels * width`` rounded to a multiple of ``divisor`` (and at least ``divisor``).

    As in MobileNet, rounding down never removes more than 10% of the scaled value.
    """
    if divisor < 1:
        raise ValueError(f"divisor must be a positive integer, got {divisor!r}")
    target = channels * width
    rounded = max(divisor, int(target + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * target:
        rounded += divisor
    return rounded


def make_activation(name: str) -> nn.Module:
    """A fresh, out-of-place activation module: ``"relu"`` or ``"relu6"``."""
    try:
        return _ACTIVATIONS[name](inplace=False)
    except KeyError:
        choices = ", ".join(_ACTIVATIONS)
        raise ValueError(f"unknown activation {name!r}; choose one of: {choices}") from None


class ConvBNAct(nn.Sequential):
    """``Conv2d`` (no bias, "same" padding) -> ``BatchNorm2d`` -> optional activation.

    The children are named ``conv``, ``bn`` and ``act``; ``activation=None`` leaves out the
    activation (e.g. for the linear projection of an inverted residual block).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        activation: str | None = "relu",
    ) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            conv=nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=kernel_size // 2,
                groups=groups,
                bias=False,
            ),
            bn=nn.BatchNorm2d(out_channels),
        )
        if activation is not None:
            layers["act"] = make_activation(activation)
        super().__init__(layers)


def init_weights(model: nn.Module) -> None:
    """Initialise a model in place: Kaiming-normal convs (fan-out), unit BN, small-normal Linear."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.01)
            nn.init.zeros_(module.bias)


class InvertedResidual(nn.Module):
    """MobileNetV2 inverted residual / MBConv block without squeeze-excitation.

    A 1x1 expansion (skipped when ``expand_ratio == 1``), a ``kernel_size`` depthwise conv carrying
    the stride, and a linear 1x1 projection; the input is added back when stride is 1 and the
    channel count is unchanged.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        expand_ratio: int,
        kernel_size: int = 3,
        activation: str = "relu6",
    ) -> None:
        super().__init__()
        hidden = in_channels * expand_ratio
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNAct(in_channels, hidden, kernel_size=1, activation=activation))
        depthwise = ConvBNAct(
            hidden, hidden, kernel_size=kernel_size, stride=stride, groups=hidden, activation=activation
        )
        layers.append(depthwise)
        layers.append(ConvBNAct(hidden, out_channels, kernel_size=1, activation=None))
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if self.use_residual:
            out = out + x
        return out
