"""Fitting a DOM to the trained network, one WAS layer at a time in module order.

For each WAS layer the DOM network's input to that conv (the layers before it already fitted, BatchNorm
re-estimated for the DOM) and the trained network's output of it are gathered on calibration images, the
layer's kept taps are solved for (:mod:`wascompress.fit.solvers`), and their difference from PW's window
is stored as the DOM's correction (:mod:`wascompress.was.fitted`). Dropped filters keep no correction.
Deterministic: the same model, draws, images and settings give the same corrections.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any, Collection, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wascompress.errors import ConfigError
from wascompress.fit.solvers import SharedMatrixFit, TapsFit, ridge_solve
from wascompress.was import dom_draws, recalibrate_bn_, set_draws_, use_pw_, was_layers
from wascompress.was.batchnorm import batchnorm_layers
from wascompress.was.fitted import add_corrections_, correction_size, seed_key
from wascompress.was.shadow import Draws, with_correction
from wascompress.was.transforms import FusedDraws
from wascompress.was.window_conv import pad_or_crop, supports_window, window_pads

log = logging.getLogger(__name__)

SOLVERS = ("taps", "shared")


@dataclass(frozen=True)
class FitSettings:
    """How a DOM is fitted: ``solver`` "taps" (each kept filter's taps) or "shared" (one matrix per layer),
    the relative ridge ``λ``, output positions sampled per image and layer (None: all), the first
    ``bn_images`` of the images re-estimating BatchNorm before each layer, batch size."""

    solver: str = "taps"
    ridge: float = 1e-4
    positions: int | None = 256
    bn_images: int = 256
    batch_size: int = 128

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise ConfigError(f"fit solver must be one of {SOLVERS}, got {self.solver!r}")
        if not self.ridge > 0:
            raise ConfigError(f"fit ridge must be > 0, got {self.ridge!r}")
        if isinstance(self.bn_images, bool) or not isinstance(self.bn_images, int) or self.bn_images < 1:
            raise ConfigError(f"fit bn_images must be a positive integer, got {self.bn_images!r}")
        if self.positions is not None and self.positions < 1:
            raise ConfigError(f"fit positions must be a positive integer or None, got {self.positions!r}")


@dataclass(frozen=True)
class LayerFit:
    """One layer's fit: relative squared error of its output against the trained network's on the fit
    images, with PW's plain window and with the fitted taps."""

    layer: str
    error_plain: float
    error_fitted: float
    seconds: float


class _Captured(Exception):
    """Raised by a pre-hook once the wanted conv input is held: the rest of the forward is not needed."""


def conv_inputs(model: nn.Module, conv: nn.Module, images: Tensor, batch_size: int) -> Iterator[Tensor]:
    """The input ``conv`` receives inside ``model`` for each batch of ``images`` (the forward stops there)."""
    held: list[Tensor] = []

    def hook(_module: nn.Module, args: tuple[Tensor, ...]) -> None:
        held.append(args[0].detach())
        raise _Captured

    handle = conv.register_forward_pre_hook(hook)
    stopping = _StoppingModel(model)
    try:
        for start in range(0, len(images), batch_size):
            stopping(images[start:start + batch_size])
            yield held.pop()
    finally:
        handle.remove()


def window_columns(conv: nn.Conv2d, x: Tensor, fused: FusedDraws) -> Tensor:
    """Patches of ``x`` under the taps ``fused`` keeps, as the smaller conv sees them: [B, groups, F, L]."""
    p = fused.placement
    pads = window_pads(tuple(conv.kernel_size), tuple(conv.padding), tuple(conv.dilation),
                       p.dst_top, p.dst_left, p.height, p.width)
    x, padding = pad_or_crop(x, pads)
    cols = F.unfold(x, (p.height, p.width), dilation=conv.dilation, padding=padding, stride=conv.stride)
    return cols.reshape(cols.shape[0], conv.groups, -1, cols.shape[-1])


def sample_positions(cols: Tensor, target: Tensor, positions: int | None, generator: torch.Generator
                     ) -> tuple[Tensor, Tensor]:
    """Both as [groups, F, N] with at most ``positions`` output positions per image (drawn from ``generator``)."""
    count = cols.shape[-1]
    if positions is not None and positions < count:
        index = torch.randperm(count, generator=generator)[:positions].to(cols.device)
        cols, target = cols[..., index], target[..., index]
    return (cols.permute(1, 2, 0, 3).flatten(2), target.permute(1, 2, 0, 3).flatten(2))


def selection_matrix(fused: FusedDraws, kernel: tuple[int, int]) -> Tensor:
    """The [h·w, k·k] matrix that takes PW's window (the shared-matrix fit's prior)."""
    p = fused.placement
    matrix = torch.zeros(p.height * p.width, kernel[0] * kernel[1])
    for row in range(p.height):
        for col in range(p.width):
            matrix[row * p.width + col, (p.src_top + row) * kernel[1] + p.src_left + col] = 1
    return matrix


def relative_error(gram: Tensor, cross: Tensor, energy: Tensor, weights: Tensor, kept: Tensor) -> float:
    """``||X W - Y||² / ||Y||²`` over the ``kept`` outputs [g, O], from the normal equations (``gram``
    [g, F, F], ``cross`` [g, F, O], ``energy`` [g, O] = ``Σ y²``, ``weights`` [g, F, O])."""
    w = weights.double()
    residual = (w * (gram @ w)).sum(dim=1) - 2 * (w * cross).sum(dim=1) + energy
    total = float(energy[kept].sum())
    return float(residual[kept].sum().clamp_min(0)) / max(total, 1e-30)


def fit_layer_(name: str, dom: nn.Module, reference: nn.Module, images: Tensor, key: str,
               settings: FitSettings, index: int) -> LayerFit:
    """Solve layer ``name``'s kept taps of DOM ``key`` (see the module docstring) and store its correction."""
    began = time.perf_counter()
    conv, shadow = dom.get_submodule(name), was_layers(dom)[name]
    fused = shadow.fused
    pw = conv.parametrizations.weight.original.detach()
    p = fused.placement
    window = pw[:, :, p.src_top:p.src_top + p.height, p.src_left:p.src_left + p.width]
    groups = conv.groups
    taps = TapsFit(groups, window.shape[1] * p.height * p.width, pw.shape[0] // groups)
    shared = SharedMatrixFit(p.height * p.width, pw.shape[2] * pw.shape[3]) if settings.solver == "shared" else None
    energy = torch.zeros(groups, pw.shape[0] // groups, dtype=torch.float64)
    generator = torch.Generator().manual_seed(1000 + index)
    pairs = zip(conv_inputs(dom, conv, images, settings.batch_size),
                conv_inputs(reference, reference.get_submodule(name), images, settings.batch_size))
    for x_dom, x_ref in pairs:
        target = F.conv2d(x_ref, pw, None, conv.stride, conv.padding, conv.dilation, groups)
        target = target.reshape(target.shape[0], groups, -1, target.shape[-2] * target.shape[-1])
        cols, target = sample_positions(window_columns(conv, x_dom, fused), target, settings.positions, generator)
        taps.add(cols, target)
        energy += target.double().square().sum(dim=-1)
        if shared is not None:
            shared.add(cols, target, pw)
    fitted = (taps.solve(window, pw, settings.ridge) if shared is None
              else shared.solve(window, pw, settings.ridge, selection_matrix(fused, shadow.kernel)))
    kept = torch.ones(pw.shape[0], dtype=torch.bool)
    if fused.kept is not None:
        kept[:] = False
        kept[list(fused.kept)] = True
    delta = (fitted - window) * kept.view(-1, 1, 1, 1)  # a dropped filter keeps no correction
    shadow.fitted[key].data.copy_(delta)

    def error(w: Tensor) -> float:
        columns = w.reshape(groups, -1, w.shape[1] * p.height * p.width).transpose(1, 2)
        return relative_error(taps.gram, taps.cross, energy, columns, kept.view(groups, -1))

    return LayerFit(name, error(window), error(window + delta), time.perf_counter() - began)


def fit_dom_(model: nn.Module, draws: Draws, key: str, images: Tensor,
             settings: FitSettings = FitSettings(), only: Collection[str] | None = None) -> list[LayerFit]:
    """Fit DOM ``draws`` of ``model`` (WAS attached, its PW the trained network) to the trained network on
    ``images``, storing the corrections under ``key``; returns each layer's fit (``only``: just these layers
    are fitted, the others keep a zero correction). The model's BatchNorm statistics and current draws are
    left as they were (the DOM's own are re-estimated at export)."""
    layers = was_layers(model)
    for name in layers:
        conv = model.get_submodule(name)
        if not supports_window(conv):
            raise ConfigError(f"layer {name}: only convs with explicit zero padding can be fitted")
    saved_draws = {name: layer.draws for name, layer in layers.items()}
    saved_bn = bn_state(model)
    reference = copy.deepcopy(model).eval()
    use_pw_(reference)
    batches = list(images[:settings.bn_images].split(settings.batch_size))
    fits = []
    with torch.no_grad():
        add_corrections_(model, key, draws)
        set_draws_(model, with_correction(draws, key))
        for index, name in enumerate(layers):
            if only is not None and name not in only:
                continue
            recalibrate_until_(model, model.get_submodule(name), batches)  # the layers before it, as fitted
            fits.append(fit_layer_(name, model, reference, images, key, settings, index))
        set_draws_(model, saved_draws)
        load_bn_state(model, saved_bn)
    return fits


def recalibrate_until_(model: nn.Module, conv: nn.Module, batches: list[Tensor]) -> None:
    """Re-estimate the BatchNorm statistics a forward meets before it reaches ``conv`` (exact averages over
    ``batches``, as :func:`recalibrate_bn_`); the forward stops there, so those after it are left reset (the
    fit restores every statistic at its end)."""
    handle = conv.register_forward_pre_hook(_stop)
    try:
        recalibrate_bn_(_StoppingModel(model), batches)
    finally:
        handle.remove()


def _stop(_module: nn.Module, _args: tuple[Tensor, ...]) -> None:
    raise _Captured


class _StoppingModel(nn.Module):
    """``model`` whose forward ends quietly where a hook raised :class:`_Captured`."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.inner = model

    def forward(self, x: Tensor) -> Tensor | None:
        try:
            return self.inner(x)
        except _Captured:
            return None


def fit_summary(fits: list[LayerFit]) -> dict[str, Any]:
    """A fit's record: per layer, the mean relative layer errors before and after, and the total time."""
    return {"layers": [asdict(f) for f in fits], "seconds": sum(f.seconds for f in fits),
            "mean_error_plain": sum(f.error_plain for f in fits) / len(fits),
            "mean_error_fitted": sum(f.error_fitted for f in fits) / len(fits)}


def fit_seeds_(model: nn.Module, seeds: Iterable[int], images: Tensor,
               settings: FitSettings = FitSettings()) -> dict[str, dict[str, Any]]:
    """Fit the DOM of every seed (its correction stored under :func:`seed_key`); each seed's record
    (:func:`fit_summary`, the images, the solver and the numbers it stores beside PW), by seed."""
    records = {}
    for seed in seeds:
        key = seed_key(seed)
        summary = fit_summary(fit_dom_(model, dom_draws(model, seed), key, images, settings))
        records[str(seed)] = {**summary, "images": len(images), "solver": settings.solver,
                              "stored_numbers": correction_size(model, key)}
        log.info("DOM seed %d fitted on %d images in %.1f s: mean relative layer error %.3f -> %.3f, %s numbers "
                 "stored beside PW", seed, len(images), summary["seconds"], summary["mean_error_plain"],
                 summary["mean_error_fitted"], f"{correction_size(model, key):,}")
    return records


def bn_state(model: nn.Module) -> list[tuple[Tensor, ...]]:
    return [(bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone())
            for bn in batchnorm_layers(model)]


def load_bn_state(model: nn.Module, state: list[tuple[Tensor, ...]]) -> None:
    for bn, (mean, var, tracked) in zip(batchnorm_layers(model), state):
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        bn.num_batches_tracked.copy_(tracked)



def window_fits(model: nn.Module, name: str, windows: list[tuple[int, int, int, int]], images: Tensor,
                settings: FitSettings = FitSettings()) -> dict[tuple[int, int, int, int], Tensor]:
    """Each window's fitted correction of layer ``name`` when it is the only layer cut (``model`` runs its
    trained weights, PW): every window's kept taps solved for the layer's own output from one pass over
    ``images``. The layer's input is then the trained network's, so one Gram matrix of its full patches
    serves every window (its sub-matrix on the window's taps), and the target is ``Gram · PW``."""
    conv, shadow = model.get_submodule(name), was_layers(model)[name]
    pw = conv.parametrizations.weight.original.detach()
    groups, (kh, kw) = conv.groups, shadow.kernel
    whole = FusedDraws((), (kh, kw))
    taps = TapsFit(groups, pw.shape[1] * kh * kw, pw.shape[0] // groups)
    generator = torch.Generator().manual_seed(2000)
    with torch.no_grad():
        for x in conv_inputs(model, conv, images, settings.batch_size):
            cols = window_columns(conv, x, whole)
            cols, _ = sample_positions(cols, cols[:, :, :1], settings.positions, generator)
            taps.gram += cols.double() @ cols.double().transpose(1, 2)
    full = pw.double().reshape(groups, pw.shape[0] // groups, -1).transpose(1, 2)  # [g, F, O]
    cross = taps.gram @ full
    fits = {}
    for top, left, height, width in windows:
        index = torch.tensor([c * kh * kw + (top + r) * kw + left + q for c in range(pw.shape[1])
                              for r in range(height) for q in range(width)])
        window = pw[:, :, top:top + height, left:left + width]
        prior = full[:, index]
        solved = ridge_solve(taps.gram[:, index][:, :, index], cross[:, index], prior, settings.ridge)
        fitted = solved.transpose(1, 2).reshape(window.shape).to(window.dtype)
        fits[(top, left, height, width)] = fitted - window
    return fits
