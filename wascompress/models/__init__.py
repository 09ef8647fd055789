"""CIFAR model zoo (32x32 input): VGG-16, ResNet-18/34, GoogLeNet, MobileNetV2, EfficientNet-Lite0, tiny."""

from __future__ import annotations

from wascompress.models import efficientnet_lite, googlenet, mobilenetv2, resnet, tiny, vgg  # noqa: F401  (registration)
from wascompress.models.registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]
