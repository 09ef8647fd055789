"""Fitted DOMs: a DOM whose kept taps are corrected to compute what the trained network computed.

Cutting a trained 3x3 kernel to a 2x2 window throws away what the other taps did. A fitted DOM keeps its
draws (a seed's, or a plan's) and adds, on each WAS layer, a correction Δ of PW's kept taps: the DOM runs
``PW's window + Δ`` wherever it runs (training, evaluation, export). Δ lives in the layer's
:class:`~wascompress.was.shadow.ShadowWeight` under the DOM's key, is trained like PW, and is all a fitted
DOM stores beyond PW (its size is :func:`correction_size`). The draws of a fitted DOM carry
:class:`~wascompress.was.transforms.FittedTaps` naming the key; :mod:`wascompress.fit` computes Δ.
"""

from __future__ import annotations

import re

import torch
from torch import Tensor, nn

from wascompress.errors import ConfigError
from wascompress.was.shadow import Draws, was_layers
from wascompress.was.transforms import FusedDraws

_SLOT = re.compile(r"^(?P<layer>.+)\.parametrizations\.weight\.0\.fitted\.(?P<key>[A-Za-z0-9_]+)$")


def seed_key(seed: int) -> str:
    """The key of DOM seed ``seed``'s fitted correction (one per seed in a model)."""
    return f"seed{int(seed)}"


def trained_correction(seed: int, fit_doms: bool, trained_seeds: tuple[int, ...]) -> str | None:
    """The correction a run's DOM seed ``seed`` runs with: its :func:`seed_key` when the run fitted its DOMs
    (``fit_doms``) and trained that seed, else None (the seed's own draws)."""
    return seed_key(seed) if fit_doms and seed in trained_seeds else None


def window_shape(draws: tuple, kernel: tuple[int, int], name: str) -> tuple[int, int]:
    """(height, width) of the PW taps a layer's draws keep; a draw that keeps no window (rotation, a
    resizing crop, no taps) cannot be fitted: one-line :class:`ConfigError`."""
    placement = FusedDraws(tuple(draws), kernel).placement
    if placement is None or placement.height == 0 or placement.width == 0:
        raise ConfigError(f"layer {name}: its DOM draws keep no window of PW's taps (rotation, a resizing crop "
                          "or no taps at all), so they cannot be fitted")
    return placement.height, placement.width


def add_corrections_(model: nn.Module, key: str, draws: Draws) -> None:
    """Give every WAS layer of ``model`` a zero correction ``key`` shaped as the window ``draws`` keep
    (replacing one of that key)."""
    for name, layer in was_layers(model).items():
        height, width = window_shape(draws[name], layer.kernel, name)
        original = model.get_submodule(name).parametrizations.weight.original
        layer.fitted[key] = nn.Parameter(original.new_zeros((*original.shape[:2], height, width)))


def correction_keys(model: nn.Module) -> list[str]:
    """The fitted DOMs the model holds corrections for, sorted."""
    return sorted({key for layer in was_layers(model).values() for key in layer.fitted})


def correction_size(model: nn.Module, key: str) -> int:
    """Numbers fitted DOM ``key`` stores beyond PW (its corrections' elements)."""
    return sum(layer.fitted[key].numel() for layer in was_layers(model).values() if key in layer.fitted)


def add_slots_for_state_(model: nn.Module, state_dict: dict[str, Tensor]) -> list[str]:
    """Create (zero) the corrections a state dict holds, so that it loads into ``model``; returns their keys."""
    layers = was_layers(model)
    keys = set()
    for name, tensor in state_dict.items():
        match = _SLOT.match(name)
        if match is None:
            continue
        layer = layers.get(match["layer"])
        if layer is None:
            raise ConfigError(f"the weights hold a fitted correction for {match['layer']!r}, not a WAS layer "
                              "of this model")
        layer.fitted[match["key"]] = nn.Parameter(torch.zeros_like(tensor))
        keys.add(match["key"])
    return sorted(keys)


def without_corrections(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """A state dict's PW and buffers alone (its fitted corrections left out)."""
    return {name: tensor for name, tensor in state_dict.items() if _SLOT.match(name) is None}
