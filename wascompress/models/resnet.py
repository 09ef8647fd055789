"""CIFAR ResNet (He et al., 2016) built from basic residual blocks: a 3x3 stem at stride 1 without
max pooling, four stages of 64/128/256/512 channels whose first blocks have strides 1, 2, 2, 2, a
1x1 conv-BN projection on the shortcut wherever the shape changes, global average pooling and a
linear classifier. ResNet-18 and ResNet-34 differ only in the number of blocks per stage.
"""

from __future__ import annotations

import torch
from torch import nn

from wascompress.models.layers import ConvBNAct, init_weights, make_activation, scaled
from wascompress.models.registry import register_model

STAGE_CHANNELS: tuple[int, ...] = (64, 128, 256, 512)
STAGE_STRIDES: tuple[int, ...] = (1, 2, 2, 2)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a residual connection; ReLU after the addition."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(in_channels, out_channels, kernel_size=3, stride=stride)
        self.conv2 = ConvBNAct(out_channels, out_channels, kernel_size=3, activation=None)
        if stride != 1 or in_channels != out_channels:
            self.shortcut: nn.Module = ConvBNAct(
                in_channels, out_channels, kernel_size=1, stride=stride, activation=None
            )
        else:
            self.shortcut = nn.Identity()
        self.act = make_activation("relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        out = out + self.shortcut(x)
        return self.act(out)


class ResNet(nn.Module):
    """A CIFAR ResNet with ``blocks[i]`` basic blocks in stage ``i``."""

    def __init__(self, blocks: tuple[int, ...], num_classes: int, width: float) -> None:
        super().__init__()
        in_channels = scaled(STAGE_CHANNELS[0], width)
        self.stem = ConvBNAct(3, in_channels, kernel_size=3)
        stages: list[nn.Module] = []
        for channels, stride, count in zip(STAGE_CHANNELS, STAGE_STRIDES, blocks):
            out_channels = scaled(channels, width)
            stage: list[nn.Module] = []
            for index in range(count):
                stage.append(BasicBlock(in_channels, out_channels, stride if index == 0 else 1))
                in_channels = out_channels
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


@register_model("resnet18")
def resnet18(num_classes: int = 10, width: float = 1.0) -> nn.Module:
    """ResNet-18 for CIFAR: 2, 2, 2, 2 basic blocks."""
    return ResNet((2, 2, 2, 2), num_classes=num_classes, width=width)


@register_model("resnet34")
def resnet34(num_classes: int = 10, width: float = 1.0) -> nn.Module:
    """ResNet-34 for CIFAR: 3, 4, 6, 3 basic blocks."""
    return ResNet((3, 4, 6, 3), num_classes=num_classes, width=width)
