"""Evaluating a model in a mode: AOM (PW) or a DOM seed, with BatchNorm statistics re-estimated for it.

Every evaluation runs in ``eval()`` mode. Before it, the BatchNorm running statistics are re-estimated
for the weights that will run (docs/method.md §3.8) on fixed calibration batches drawn from the training
set by a seed, so the same model, mode and seed always give the same accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from wascompress.data import BatchLoader
from wascompress.data.datasets import Images
from wascompress.data.run_data import calibration_batches  # noqa: F401  (part of this module's API)
from wascompress.was import recalibrate_bn_, shadow_mode


@dataclass(frozen=True)
class Accuracy:
    correct: int
    total: int

    @property
    def top1(self) -> float:
        return self.correct / self.total if self.total else float("nan")


@torch.no_grad()
def count_correct(
    model: nn.Module, data: Images, batch_size: int = 256, device: torch.device | str = "cpu",
    rank: int = 0, world_size: int = 1, transform: Callable[[Tensor], Tensor] | None = None,
) -> Accuracy:
    """Top-1 counts of ``model`` (put in eval mode) on ``data``, each batch passed through ``transform``
    first if given; with ``world_size`` > 1, on this rank's share."""
    model.eval()
    if world_size > 1:
        data = data.subset(torch.arange(rank, len(data), world_size))
    correct = total = 0
    for images, labels in BatchLoader(data, batch_size, shuffle=False, device=device):
        if transform is not None:
            images = transform(images)
        correct += int((model(images).argmax(dim=1) == labels).sum())
        total += labels.shape[0]
    return Accuracy(correct, total)


def mode_accuracy(
    model: nn.Module,
    data: Images,
    *,
    mode: str = "aom",
    seed: int | None = None,
    fitted: str | None = None,
    calibration: list[Tensor] | None = None,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    rank: int = 0,
    world_size: int = 1,
) -> Accuracy:
    """Accuracy of a WAS model in ``mode`` ("aom" or "dom" with ``seed``, and its fitted correction
    ``fitted`` if given) after re-estimating BatchNorm on ``calibration`` (skipped when None). The model keeps
    the statistics of this mode afterwards."""
    with shadow_mode(model, mode, seed, fitted):
        if calibration is not None:
            recalibrate_bn_(model, calibration, device=device)
        return count_correct(model, data, batch_size, device, rank, world_size)
