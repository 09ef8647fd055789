"""A tiny CNN for fast tests: a few 3x3 conv-BN-ReLU layers, one max pool, one residual block and
one depthwise conv, then global average pooling and a linear classifier. It has every structural
feature of the larger zoo models (residual addition, depthwise conv, kernel > 1) at a cost of a
few million multiply-accumulates per 32x32 image.
"""

from __future__ import annotations

import torch
from torch import nn

from wascompress.models.layers import ConvBNAct, init_weights, make_activation, scaled
from wascompress.models.registry import register_model


class TinyNet(nn.Module):
    """The ``tiny`` test model; ``width`` scales the 8 and 16 channel counts."""

    def __init__(self, num_classes: int, width: float) -> None:
        super().__init__()
        narrow = scaled(8, width)
        wide = scaled(16, width)
        self.conv1 = ConvBNAct(3, narrow, kernel_size=3)
        self.conv2 = ConvBNAct(narrow, narrow, kernel_size=3)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.conv3 = ConvBNAct(narrow, wide, kernel_size=3)
        self.res1 = ConvBNAct(wide, wide, kernel_size=3)
        self.res2 = ConvBNAct(wide, wide, kernel_size=3, activation=None)
        self.res_act = make_activation("relu")
        self.depthwise = ConvBNAct(wide, wide, kernel_size=3, groups=wide)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(wide, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3(self.pool(self.conv2(self.conv1(x))))
        x = self.res_act(self.res2(self.res1(x)) + x)
        x = self.depthwise(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


@register_model("tiny")
def tiny(num_classes: int = 10, width: float = 1.0) -> nn.Module:
    """A very small CNN for tests."""
    return TinyNet(num_classes=num_classes, width=width)
