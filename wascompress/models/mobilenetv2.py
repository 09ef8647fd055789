"""MobileNetV2 (Sandler et al., 2018) for 32x32 input: a 3x3 stem followed by stages of inverted
residual blocks (1x1 expansion, 3x3 depthwise conv, linear 1x1 projection, ReLU6), a 1x1 conv to
1280 channels, global average pooling, dropout and a linear classifier. For CIFAR the first two
stride-2 layers of the ImageNet network, the stem and the 24-channel stage, run at stride 1, so
the 32x32 input is downsampled three times, to 4x4.
"""

from __future__ import annotations

import torch
from torch import nn

from wascompress.models.layers import ConvBNAct, InvertedResidual, init_weights, scaled
from wascompress.models.registry import register_model

#: Per stage: (expand ratio, output channels, number of blocks, stride of the first block).
MOBILENETV2_STAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 1),  # stride 2 on ImageNet
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
CHANNEL_DIVISOR = 8


class MobileNetV2(nn.Module):
    """MobileNetV2 for CIFAR with every channel count scaled by ``width`` (multiples of 8)."""

    def __init__(self, num_classes: int, width: float, dropout: float = 0.2) -> None:
        super().__init__()
        in_channels = scaled(32, width, CHANNEL_DIVISOR)
        layers: list[nn.Module] = [ConvBNAct(3, in_channels, kernel_size=3, activation="relu6")]
        for expand_ratio, channels, count, stride in MOBILENETV2_STAGES:
            out_channels = scaled(channels, width, CHANNEL_DIVISOR)
            for index in range(count):
                block_stride = stride if index == 0 else 1
                layers.append(InvertedResidual(in_channels, out_channels, block_stride, expand_ratio))
                in_channels = out_channels
        head_channels = scaled(1280, max(1.0, width), CHANNEL_DIVISOR)
        layers.append(ConvBNAct(in_channels, head_channels, kernel_size=1, activation="relu6"))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(head_channels, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.pool(self.features(x)), 1)
        return self.classifier(self.dropout(x))


@register_model("mobilenetv2")
def mobilenetv2(num_classes: int = 10, width: float = 1.0) -> nn.Module:
    """MobileNetV2 for CIFAR."""
    return MobileNetV2(num_classes=num_classes, width=width)
