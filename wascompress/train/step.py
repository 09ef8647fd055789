"""One WAS training step: draw Shadow Weights, forward and loss with SW, update Plain Weights.

Two kinds of step, kept apart from the trainer so that benchmarks time exactly the step the trainer runs:

- :func:`training_step`, the paper's: one forward with a random SW (or PW, with the chance ``1 - prob``).
- :func:`sandwich_step` (docs/method.md §6): several forwards of one batch, each followed by its backward so
  that only one graph is alive at a time, their gradients summed in PW before one optimizer step: PW on
  the labels (AOM), then each fixed DOM draw the user will deploy, then random SW draws; with in-place
  distillation every SW forward also learns from the AOM forward's detached soft predictions, and with a
  frozen teacher (the model the run started from) from that teacher's, computed once per batch.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wascompress.was import resample_, set_draws_, use_pw_, was_layers
from wascompress.was.shadow import Draws, sample_draws


def _autocast(images: Tensor, autocast_dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if autocast_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=images.device.type, dtype=autocast_dtype)


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
    with _autocast(images, autocast_dtype):
        logits = model(images)
        loss = F.cross_entropy(logits, labels)
    _backward(loss, scaler)
    _optimizer_step(optimizer, scaler)
    correct = (logits.detach().argmax(dim=1) == labels).sum()
    return loss.detach() * labels.shape[0], correct


@dataclass(frozen=True)
class Distillation:
    """Distillation: loss = (1 - weight) * CE(labels) + weight * T² * KL(teacher_T || student_T), the KL
    averaged over the teachers given (a frozen model's and this step's AOM forward's logits)."""

    weight: float = 0.5
    temperature: float = 1.0

    def loss(self, logits: Tensor, labels: Tensor, *teachers: Tensor) -> Tensor:
        t = self.temperature
        logits = _wide(logits)
        student = F.log_softmax(logits / t, dim=1)
        kl = sum(F.kl_div(student, F.log_softmax(_wide(teacher.detach()) / t, dim=1), reduction="batchmean",
                          log_target=True) for teacher in teachers) * (t * t / len(teachers))
        if self.weight >= 1:
            return kl
        return (1 - self.weight) * F.cross_entropy(logits, labels) + self.weight * kl


@dataclass(frozen=True)
class Sandwich:
    """The forwards one sandwich step trains, in order (see the module docstring): PW on the labels, each
    fixed DOM draw, ``random_samples`` random SW; built from a training configuration by
    :func:`wascompress.train.sandwich.sandwich_for`."""

    fixed: tuple[Draws, ...] = ()  # the DOM draws to deploy, trained in every step
    random_samples: int = 1  # random SW draws per step
    train_pw: bool = True  # the AOM forward on the labels (off: fine-tuning a frozen DOM)
    distill: Distillation | None = None
    teacher: Callable[[Tensor], Tensor] | None = None  # a frozen teacher, run once per batch without gradient
    in_place: bool = True  # with distill: SW forwards also learn from this step's AOM forward

    @property
    def passes(self) -> int:
        return int(self.train_pw) + len(self.fixed) + self.random_samples


def sandwich_step(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator | None,
    sandwich: Sandwich,
    *,
    scaler: "torch.amp.GradScaler | None" = None,
    autocast_dtype: torch.dtype | None = None,
) -> tuple[Tensor, Tensor]:
    """One step of ``sandwich``; returns the first forward's (summed loss, number correct), detached.

    ``model`` may be wrapped in DistributedDataParallel: gradients are then all-reduced once, with the
    last backward. ``generator`` draws the random SW (every WAS layer, ignoring ``prob``).
    """
    core = model.module if hasattr(model, "no_sync") else model
    optimizer.zero_grad(set_to_none=True)
    passes: list[Draws | str | None] = []
    if sandwich.train_pw:
        passes.append(None)
    passes.extend(sandwich.fixed)
    passes.extend("random" for _ in range(sandwich.random_samples))
    frozen = aom = None
    if sandwich.teacher is not None and sandwich.distill is not None:
        with torch.no_grad(), _autocast(images, autocast_dtype):
            frozen = _wide(sandwich.teacher(images))
    first: tuple[Tensor, Tensor] | None = None
    for i, draws in enumerate(passes):
        if draws is None:
            use_pw_(core)
        elif draws == "random":
            set_draws_(core, sample_draws(was_layers(core), generator))
        else:
            set_draws_(core, draws)
        last = i == len(passes) - 1
        sync = contextlib.nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync()
        with sync:
            with _autocast(images, autocast_dtype):
                logits = model(images)
                teachers = [t for t in (frozen, aom) if t is not None] if draws is not None else []
                if sandwich.distill is None or not teachers:
                    loss = F.cross_entropy(logits, labels)
                else:
                    loss = sandwich.distill.loss(logits, labels, *teachers)
            _backward(loss, scaler)
        if draws is None and sandwich.distill is not None and sandwich.in_place:
            aom = _wide(logits.detach())
        if first is None:
            first = (loss.detach() * labels.shape[0], (logits.detach().argmax(dim=1) == labels).sum())
    _optimizer_step(optimizer, scaler)
    use_pw_(core)
    assert first is not None
    return first


def _wide(t: Tensor) -> Tensor:
    """At least float32 (mixed-precision logits are float16; float64 stays)."""
    return t if t.dtype == torch.float64 else t.float()


def _backward(loss: Tensor, scaler: "torch.amp.GradScaler | None") -> None:
    if scaler is not None:
        scaler.scale(loss).backward()
    else:
        loss.backward()


def _optimizer_step(optimizer: torch.optim.Optimizer, scaler: "torch.amp.GradScaler | None") -> None:
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
