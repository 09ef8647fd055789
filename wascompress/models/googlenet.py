"""GoogLeNet (Inception v1, Szegedy et al., 2015) for 32x32 input: a 3x3 conv pre-layer with 192
channels, nine Inception modules in three groups separated by stride-2 max pooling, global
average pooling and a linear classifier. Each Inception module concatenates four parallel
branches along the channel axis: a 1x1 conv, a 1x1 -> 3x3 conv, a 1x1 -> 5x5 conv and a
3x3 max pool -> 1x1 conv. The 5x5 branch keeps a real 5x5 kernel (rather than two stacked 3x3
convs) because weight augmentation targets both 3x3 and 5x5 branch convs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from wascompress.models.layers import ConvBNAct, init_weights, scaled
from wascompress.models.registry import register_model

#: Per module: (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection) output channels.
InceptionSpec = tuple[int, int, int, int, int, int]

STAGE3: tuple[InceptionSpec, ...] = ((64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64))
STAGE4: tuple[InceptionSpec, ...] = (
    (192, 96, 208, 16, 48, 64),
    (160, 112, 224, 24, 64, 64),
    (128, 128, 256, 24, 64, 64),
    (112, 144, 288, 32, 64, 64),
    (256, 160, 320, 32, 128, 128),
)
STAGE5: tuple[InceptionSpec, ...] = ((256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128))


class Inception(nn.Module):
    """Four parallel branches (1x1, 3x3, 5x5, pool) concatenated along the channel axis."""

    def __init__(self, in_channels: int, spec: Sequence[int]) -> None:
        super().__init__()
        n1x1, n3x3_reduce, n3x3, n5x5_reduce, n5x5, pool_proj = spec
        self.branch1 = ConvBNAct(in_channels, n1x1, kernel_size=1)
        self.branch3 = nn.Sequential(
            ConvBNAct(in_channels, n3x3_reduce, kernel_size=1),
            ConvBNAct(n3x3_reduce, n3x3, kernel_size=3),
        )
        self.branch5 = nn.Sequential(
            ConvBNAct(in_channels, n5x5_reduce, kernel_size=1),
            ConvBNAct(n5x5_reduce, n5x5, kernel_size=5),
        )
        self.branch_pool = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1),
            ConvBNAct(in_channels, pool_proj, kernel_size=1),
        )
        self.out_channels = n1x1 + n3x3 + n5x5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)]
        return torch.cat(branches, dim=1)


class GoogLeNet(nn.Module):
    """GoogLeNet for CIFAR with every channel count scaled by ``width``."""

    def __init__(self, num_classes: int, width: float) -> None:
        super().__init__()
        channels = scaled(192, width)
        self.pre_layers = ConvBNAct(3, channels, kernel_size=3)
        groups: list[nn.Sequential] = []
        for specs in (STAGE3, STAGE4, STAGE5):
            modules: list[nn.Module] = []
            for spec in specs:
                block = Inception(channels, [scaled(c, width) for c in spec])
                modules.append(block)
                channels = block.out_channels
            groups.append(nn.Sequential(*modules))
        self.inception3, self.inception4, self.inception5 = groups
        self.pool3 = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.pool4 = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool3(self.inception3(self.pre_layers(x)))
        x = self.pool4(self.inception4(x))
        x = self.inception5(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


@register_model("googlenet")
def googlenet(num_classes: int = 10, width: float = 1.0) -> nn.Module:
    """GoogLeNet (Inception v1) for CIFAR with real 5x5 branch convs."""
    return GoogLeNet(num_classes=num_classes, width=width)
