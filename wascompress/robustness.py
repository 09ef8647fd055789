"""Accuracy under input shifts: the paper's Tables 3-5 (rotation, translation and crop of test images).

A shift is parsed from ``KIND:ARGS`` — ``rotate:LO:HI`` (degrees, uniform per image; ``rotate:A`` is a
fixed angle), ``translate:F`` (up to F of the image size per axis, whole pixels, zero fill) and
``crop:LO:HI`` (a window of area fraction in [LO, HI], resized back; ``crop:S`` a fixed fraction). Each
shift draws its per-image parameters from a generator seeded by the evaluation seed, so the same seed
gives the same shifted images. The drop is ``clean - shifted`` in points and, relative, ``drop / clean``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wascompress.data.datasets import Images
from wascompress.errors import ConfigError
from wascompress.evaluate import count_correct, mode_accuracy

KINDS = ("rotate", "translate", "crop")


@dataclass(frozen=True)
class ImageShift:
    """A shift of the test images (not of the kernels): ``kind`` and the range its per-image draws span."""

    kind: str
    low: float
    high: float

    @property
    def label(self) -> str:
        if self.kind == "translate":
            return f"translate:{self.high:g}"
        return f"{self.kind}:{self.low:g}" if self.low == self.high else f"{self.kind}:{self.low:g}:{self.high:g}"


def parse_shift(text: str) -> ImageShift:
    """``rotate:0:45``, ``rotate:30``, ``translate:0.2``, ``crop:0.6:0.8``, ``crop:0.7``."""
    kind, *args = text.split(":")
    if kind not in KINDS:
        raise ConfigError(f"unknown shift {kind!r} in {text!r}; use rotate:LO:HI, translate:F or crop:LO:HI")
    try:
        values = [float(a) for a in args]
    except ValueError:
        raise ConfigError(f"shift {text!r} needs numbers after the kind") from None
    if not 1 <= len(values) <= (1 if kind == "translate" else 2) or not all(map(math.isfinite, values)):
        raise ConfigError(f"bad shift {text!r}; use rotate:LO:HI, translate:F or crop:LO:HI")
    low, high = (0.0, values[0]) if kind == "translate" else (values[0], values[-1])
    if low > high:
        raise ConfigError(f"shift {text!r} needs LO <= HI")
    if kind == "translate" and not 0 <= high < 1:
        raise ConfigError(f"translate fraction must be in [0, 1), got {high:g}")
    if kind == "crop" and not 0 < low <= high <= 1:
        raise ConfigError(f"crop area fraction must be in (0, 1], got {text!r}")
    return ImageShift(kind, low, high)


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)


def shift_images(images: Tensor, shift: ImageShift, generator: torch.Generator) -> Tensor:
    """Apply ``shift`` to a batch of normalised images [B, C, H, W] (zero fill = the mean colour)."""
    n, _, h, w = images.shape
    theta = torch.zeros(n, 2, 3, dtype=torch.float64)
    if shift.kind == "rotate":
        angle = torch.deg2rad(_uniform(n, shift.low, shift.high, generator))
        theta[:, 0, 0], theta[:, 0, 1] = torch.cos(angle), -torch.sin(angle)
        theta[:, 1, 0], theta[:, 1, 1] = torch.sin(angle), torch.cos(angle)
    elif shift.kind == "translate":
        dx = torch.round(_uniform(n, -shift.high * w, shift.high * w, generator))
        dy = torch.round(_uniform(n, -shift.high * h, shift.high * h, generator))
        theta[:, 0, 0] = theta[:, 1, 1] = 1
        theta[:, 0, 2], theta[:, 1, 2] = -2 * dx / w, -2 * dy / h
    else:  # crop: a square window of the drawn area fraction at a random place, resized to H x W
        side = torch.sqrt(_uniform(n, shift.low, shift.high, generator))
        cx = (1 - side) * (2 * torch.rand(n, generator=generator, dtype=torch.float64) - 1)
        cy = (1 - side) * (2 * torch.rand(n, generator=generator, dtype=torch.float64) - 1)
        theta[:, 0, 0] = theta[:, 1, 1] = side
        theta[:, 0, 2], theta[:, 1, 2] = cx, cy
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    mode = "nearest" if shift.kind == "translate" else "bilinear"
    return F.grid_sample(images, grid, mode=mode, padding_mode="zeros", align_corners=False)


def shifted_accuracy(model: nn.Module, data: Images, shift: ImageShift | None, seed: int = 0, batch_size: int = 256) -> float:
    """Top-1 of ``model`` (eval mode, current BN statistics) on ``data`` with ``shift`` applied."""
    generator = torch.Generator().manual_seed(seed)
    transform = None if shift is None else (lambda images: shift_images(images, shift, generator))
    return count_correct(model, data, batch_size, transform=transform).top1


def robustness_rows(model: nn.Module, data: Images, shifts: list[ImageShift], *, mode: str, seed: int | None,
                    calibration: list[Tensor] | None, shift_seed: int = 0) -> list[dict[str, Any]]:
    """Clean and shifted accuracy of one mode (BN re-estimated for it when ``calibration`` is given)."""
    from wascompress.was import shadow_mode

    clean = mode_accuracy(model, data, mode=mode, seed=seed, calibration=calibration).top1
    with shadow_mode(model, mode, seed):  # mode_accuracy left the statistics of this mode in place
        return shift_rows(model, data, shifts, mode=mode, seed=seed, shift_seed=shift_seed, clean=clean)


def shift_rows(model: nn.Module, data: Images, shifts: list[ImageShift], *, mode: str, seed: int | None,
               shift_seed: int = 0, clean: float | None = None) -> list[dict[str, Any]]:
    """Clean and shifted accuracy of ``model`` as it is (a module, or an exported file's
    :class:`~wascompress.profile.onnx_classifier.OnnxClassifier`), its rows labelled ``mode`` / ``seed``."""
    if clean is None:
        clean = shifted_accuracy(model, data, None)
    rows = [{"mode": mode, "seed": seed, "shift": "none", "accuracy": clean, "drop_points": 0.0, "drop_rate": 0.0}]
    for shift in shifts:
        accuracy = shifted_accuracy(model, data, shift, seed=shift_seed)
        drop = clean - accuracy
        rows.append({"mode": mode, "seed": seed, "shift": shift.label, "accuracy": accuracy,
                     "drop_points": drop * 100, "drop_rate": drop / clean if clean else float("nan")})
    return rows
