"""EfficientNet-Lite0 (the mobile-friendly EfficientNet-B0 variant) for 32x32 input: MBConv blocks
with expand ratios 1 and 6 and 3x3 or 5x5 depthwise convs, as in the B0 stage table, but without
squeeze-excitation, with ReLU6 instead of swish and with the stem (32 channels) and head
(1280 channels) kept fixed rather than scaled, as Lite does. For CIFAR the 3x3 stem runs at
stride 1 and so does the first stride-2 stage of the table, so the input is downsampled three
times, to 4x4.
"""

from __future__ import annotations

import torch
from torch import nn

from wascompress.models.layers import ConvBNAct, InvertedResidual, init_weights, scaled
from wascompress.models.registry import register_model

#: Per stage: (expand ratio, depthwise kernel, stride of the first block, output channels, blocks).
EFFICIENTNET_B0_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 16, 1),
    (6, 3, 1, 24, 2),  # stride 2 on ImageNet
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
CHANNEL_DIVISOR = 8


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite for CIFAR; ``width`` scales the MBConv stages, not the stem or head."""

    def __init__(
        self,
        stages: tuple[tuple[int, int, int, int, int], ...],
        num_classes: int,
        width: float,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        in_channels = STEM_CHANNELS
        layers: list[nn.Module] = [ConvBNAct(3, in_channels, kernel_size=3, activation="relu6")]
        for expand_ratio, kernel_size, stride, channels, count in stages:
            out_channels = scaled(channels, width, CHANNEL_DIVISOR)
            for index in range(count):
                layers.append(
                    InvertedResidual(
                        in_channels,
                        out_channels,
                        stride if index == 0 else 1,
                        expand_ratio,
                        kernel_size=kernel_size,
                    )
                )
                in_channels = out_channels
        layers.append(ConvBNAct(in_channels, HEAD_CHANNELS, kernel_size=1, activation="relu6"))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(HEAD_CHANNELS, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.pool(self.features(x)), 1)
        return self.classifier(self.dropout(x))


@register_model("efficientnet_lite0")
def efficientnet_lite0(num_classes: int = 10, width: float = 1.0) -> nn.Module:
    """EfficientNet-Lite0 for CIFAR."""
    return EfficientNetLite(EFFICIENTNET_B0_STAGES, num_classes=num_classes, width=width)
