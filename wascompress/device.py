"""Choosing the device and setting up fast, reproducible math on it."""

from __future__ import annotations

import torch

from wascompress.errors import ConfigError


def flush_denormals() -> None:
    """Treat subnormal floats as zero on the CPU.

    Measured here: a resnet18 (width 0.25, batch 128) forward+backward took 0.5-3.2 s with subnormal
    numbers in its gradients and a steady 0.27 s with them flushed. Accuracy is unaffected (values
    below 1.2e-38 in float32).
    """
    torch.set_flush_denormal(True)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` (CUDA if present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; a missing GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but no CUDA GPU is available")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {name!r} is not supported; use auto, cpu, cuda or cuda:N")
    return device
