"""VGG-16 with batch normalisation for 32x32 input: thirteen 3x3 conv-BN-ReLU layers in five
stages separated by 2x2 max pooling, which reduce the feature map to 1x1, followed by a single
linear classifier on the flattened 512-channel vector.
"""

from __future__ import annotations

import torch
from torch import nn

from wascompress.models.layers import ConvBNAct, init_weights, scaled
from wascompress.models.registry import register_model

#: Output channels of each 3x3 conv layer; ``"M"`` is a 2x2 max pool.
VGG16_CONFIG: tuple[int | str, ...] = (
    64, 64, "M",
    128, 128, "M",
    256, 256, 256, "M",
    512, 512, 512, "M",
    512, 512, 512, "M",
)  # fmt: skip


class VGG(nn.Module):
    """A plain VGG network described by a layer configuration such as :data:`VGG16_CONFIG`."""

    def __init__(self, config: tuple[int | str, ...], num_classes: int, width: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for item in config:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                out_channels = scaled(int(item), width)
                layers.append(ConvBNAct(in_channels, out_channels, kernel_size=3))
                in_channels = out_channels
        self.features = nn.Sequential(*layers)
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Linear(in_channels, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.features(x)))


@register_model("vgg16")
def vgg16(num_classes: int = 10, width: float = 1.0) -> nn.Module:
    """VGG-16-BN for CIFAR."""
    return VGG(VGG16_CONFIG, num_classes=num_classes, width=width)
