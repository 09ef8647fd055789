"""One WAS training step: draw Shadow Weights, forward and loss with SW, update Plain Weights.

Kept apart from the trainer so that benchmarks time exactly the step the trainer runs.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wascompress.was import resample_


def training_step(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator | None,
    *,
    scaler: "torch.amp.GradScaler | None" = None,
    autocast_dtype: torch.dtype | None = None,
) -> tuple[Tensor, Tensor]:
    """Run one step; returns (summed loss, number correct) as detached tensors (no device sync).

    ``generator`` draws this step's SW; ``None`` trains PW directly (a model without WAS). With
    ``autocast_dtype`` (CUDA mixed precision) the forward pass runs under autocast and ``scaler``
    scales the loss.
    """
    if generator is not None:
        resample_(model, generator)
    optimizer.zero_grad(set_to_none=True)
    amp = (
        torch.autocast(device_type=images.device.type, dtype=autocast_dtype)
        if autocast_dtype is not None
        else contextlib.nullcontext()
    )
    with amp:
        logits = model(images)
        loss = F.cross_entropy(logits, labels)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    correct = (logits.detach().argmax(dim=1) == labels).sum()
    return loss.detach() * labels.shape[0], correct
