"""Choosing a DOM's cuts layer by layer: each option scored by what it costs the fitted network, then the
cheapest set of options that meets a MAC budget.

The options are, per conv with a kernel over 1x1, a smaller window (2x3, 3x2, 2x2, 1x3, 3x1 of a 3x3: the
window of that shape that holds the most of PW's weight), and per channel group (:mod:`.structure`) fewer
channels, in steps of ``channel_step`` (ONNX Runtime's blocked layout), the least important dropped. Each
option alone is applied to the trained network, the layers it changes fitted (the cut conv's taps; for
dropped channels the convs that consumed them), BatchNorm re-estimated, and scored by the KL divergence of
the network's predictions from the trained network's on held-out images. Scores are taken as additive, as
in layer-wise sensitivity allocation: a greedy search adds, step by step, the option that costs the least
score per MAC saved (MACs counted exactly for the whole plan), until the plan meets the budget, then undoes
what the budget no longer needs. The space holds channel-only and kernel-only plans: nothing is cut where
no option pays.
"""

from __future__ import annotations

import copy
import itertools
import logging
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wascompress.errors import ConfigError
from wascompress.fit.layerwise import FitSettings, bn_state, fit_dom_, load_bn_state, window_fits
from wascompress.was.fitted import add_corrections_
from wascompress.plan.structure import Structure
from wascompress.was import recalibrate_bn_, set_draws_, use_pw_, was_layers
from wascompress.was.planned import DomPlan, LayerCut, fingerprint
from wascompress.was.shadow import with_correction

log = logging.getLogger(__name__)

WINDOWS = ((2, 3), (3, 2), (2, 2), (1, 3), (3, 1))  # of a 3x3 kernel; other kernels: every smaller window
PROBE = "planprobe"


@dataclass(frozen=True)
class PlanSettings:
    """How options are scored: ``channel_step`` channels per step (and the fewest kept, as a share),
    the fit of each option (``fit``), images for BatchNorm re-estimation and the batch size."""

    channel_step: int = 16
    min_keep: float = 0.25
    windows: bool = True
    channels: bool = True
    fit: FitSettings = FitSettings(positions=64, bn_images=128)
    batch_size: int = 128

    def __post_init__(self) -> None:
        if isinstance(self.channel_step, bool) or not isinstance(self.channel_step, int) or self.channel_step < 1:
            raise ConfigError(f"channel step must be a positive integer, got {self.channel_step!r}")
        if not 0 < self.min_keep <= 1:
            raise ConfigError(f"min_keep must be in (0, 1], got {self.min_keep!r}")
        if not (self.windows or self.channels):
            raise ConfigError("a plan needs kernel windows or channel cuts to choose from")


@dataclass(frozen=True)
class Option:
    """One way to cut one unit (a conv's window or a group's channels), with its score."""

    unit: str  # "window:<conv>" or "channels:<group index>"
    window: tuple[int, int, int, int] | None = None  # top, left, height, width
    keep: int | None = None
    score: float = 0.0


def window_options(structure: Structure, model: nn.Module, layers: list[str]) -> list[Option]:
    """Every smaller window of each WAS conv with a kernel over 1x1, placed where PW's weight is largest."""
    options = []
    for name in layers:
        conv = structure.convs[name]
        kh, kw = conv.kernel
        if kh * kw == 1:
            continue
        shapes = WINDOWS if (kh, kw) == (3, 3) else [(h, w) for h in range(1, kh + 1) for w in range(1, kw + 1)
                                                     if (h, w) != (kh, kw)]
        energy = _plain_weight(model, name).square().sum(dim=(0, 1))
        for h, w in shapes:
            top, left = max(itertools.product(range(kh - h + 1), range(kw - w + 1)),
                            key=lambda p: (float(energy[p[0]:p[0] + h, p[1]:p[1] + w].sum()), -p[0], -p[1]))
            options.append(Option(f"window:{name}", window=(top, left, h, w)))
    return options


def channel_options(structure: Structure, settings: PlanSettings) -> list[Option]:
    """Fewer channels for each group, in steps of ``channel_step``, down to ``min_keep`` of them."""
    options = []
    for index, group in enumerate(structure.groups):
        lowest = max(settings.channel_step, int(group.channels * settings.min_keep))
        top = (group.channels - 1) // settings.channel_step * settings.channel_step
        for keep in range(top, lowest - 1, -settings.channel_step):
            options.append(Option(f"channels:{index}", keep=keep))
    return options


def _plain_weight(model: nn.Module, name: str) -> Tensor:
    conv = model.get_submodule(name)
    return conv.parametrizations.weight.original.detach() if hasattr(conv, "parametrizations") else conv.weight.detach()


def option_cuts(option: Option, structure: Structure) -> tuple[dict[str, LayerCut], list[str]]:
    """The cuts one option makes alone, and the layers to fit for it."""
    kind, target = option.unit.split(":", 1)
    if kind == "window":
        return {target: LayerCut(window=option.window)}, [target]
    group = structure.groups[int(target)]
    kept = tuple(sorted(group.ranking[:option.keep]))
    return {p: LayerCut(kept=kept) for p in group.producers}, list(group.consumers)


class Scorer:
    """Scores options on a WAS-attached copy of the trained model: fit, re-estimate BatchNorm, KL divergence
    of the predictions from the trained network's on ``held_out``, less that of the uncut network with its
    BatchNorm re-estimated the same way (what re-estimation alone changes is no option's cost)."""

    def __init__(self, model: nn.Module, fit_images: Tensor, held_out: Tensor, settings: PlanSettings) -> None:
        self.model = model
        self.fit_images, self.held_out, self.settings = fit_images, held_out, settings
        self.bn_batches = list(fit_images[:settings.fit.bn_images].split(settings.batch_size))
        use_pw_(model)
        self.fingerprint = fingerprint(model)
        self.reference = self._log_probs()
        self.baseline = 0.0
        self.baseline = self.score({}, [])  # BatchNorm re-estimated on the fit images, nothing cut

    def _log_probs(self) -> Tensor:
        with torch.no_grad():
            return torch.cat([F.log_softmax(self.model(x), dim=1) for x in self.held_out.split(self.settings.batch_size)])

    def score(self, cuts: dict[str, LayerCut], fit_layers: list[str],
              corrections: dict[str, Tensor] | None = None) -> float:
        """The score of ``cuts`` with ``fit_layers`` fitted, or the ``corrections`` given (by layer) instead."""
        plan = DomPlan(self.fingerprint, cuts)
        draws = plan.draws(self.model)
        layers = [n for n in fit_layers if n in was_layers(self.model)]
        saved = bn_state(self.model)
        try:
            if corrections is None:
                fit_dom_(self.model, draws, PROBE, self.fit_images, self.settings.fit, only=layers)
            else:
                add_corrections_(self.model, PROBE, draws)
                for name, delta in corrections.items():
                    was_layers(self.model)[name].fitted[PROBE].data.copy_(delta)
            set_draws_(self.model, with_correction(draws, PROBE))
            recalibrate_bn_(self.model, self.bn_batches)
            log_probs = self._log_probs()
        finally:
            use_pw_(self.model)
            load_bn_state(self.model, saved)
            for layer in was_layers(self.model).values():
                if PROBE in layer.fitted:
                    del layer.fitted[PROBE]
        divergence = float(F.kl_div(log_probs, self.reference, log_target=True, reduction="batchmean"))
        return divergence - self.baseline


def score_options(scorer: Scorer, structure: Structure, options: list[Option]) -> list[Option]:
    """Each option with its score (see :class:`Scorer`); a layer's window options share one fit
    (:func:`~wascompress.fit.layerwise.window_fits`)."""
    scored = []
    began = time.perf_counter()
    windows: dict[str, list[tuple[int, int, int, int]]] = {}
    for option in options:
        if option.window is not None:
            windows.setdefault(option.unit.split(":", 1)[1], []).append(option.window)
    solved = {}
    for name, boxes in windows.items():
        with torch.no_grad():
            use_pw_(scorer.model)
            fits = window_fits(scorer.model, name, boxes, scorer.fit_images, scorer.settings.fit)
        solved.update({(name, box): delta for box, delta in fits.items()})
    for option in options:
        cuts, fit_layers = option_cuts(option, structure)
        corrections = None
        if option.window is not None:
            name = option.unit.split(":", 1)[1]
            corrections = {name: solved[(name, option.window)]}
        scored.append(Option(option.unit, option.window, option.keep, scorer.score(cuts, fit_layers, corrections)))
    log.info("scored %d cut options in %.1f s", len(options), time.perf_counter() - began)
    return scored


def _cut_sizes(chosen: dict[str, Option]) -> tuple[dict[str, tuple[int, int]], dict[int, int]]:
    windows = {o.unit.split(":", 1)[1]: o.window[2:] for o in chosen.values() if o.window is not None}
    kept = {int(o.unit.split(":", 1)[1]): o.keep for o in chosen.values() if o.keep is not None}
    return windows, kept


def plan_macs(structure: Structure, chosen: dict[str, Option]) -> int:
    return structure.macs(*_cut_sizes(chosen))


def layer_table(structure: Structure, chosen: dict[str, Option]) -> list[dict[str, Any]]:
    """Per conv and linear layer: its kernel and window, channels and kept channels, dense and planned MACs."""
    dense, planned = structure.layer_macs({}, {}), structure.layer_macs(*_cut_sizes(chosen))
    cuts = plan_cuts(structure, chosen)
    rows = []
    for name in dense:
        conv = structure.convs.get(name)
        cut = cuts.get(name)
        window = cut.window[2:] if cut is not None and cut.window is not None else (conv.kernel if conv else None)
        rows.append({"layer": name, "kernel": list(conv.kernel) if conv else None,
                     "window": list(window) if window else None,
                     "channels": conv.out_channels if conv else structure.linears[name][1],
                     "kept": len(cut.kept) if cut is not None and cut.kept is not None else None,
                     "dense_macs": dense[name], "macs": planned[name]})
    return rows


def options_by_unit(options: list[Option]) -> dict[str, list[Option]]:
    """The options grouped by the unit (a conv's window, a group's channels) they cut, in order."""
    by_unit: dict[str, list[Option]] = {}
    for option in options:
        by_unit.setdefault(option.unit, []).append(option)
    return by_unit


def allocate(structure: Structure, options: list[Option], target_macs: int) -> dict[str, Option]:
    """The units' options (at most one each) of least total score whose plan has at most ``target_macs``
    (greedy on score per MAC saved, then relaxed); a budget that cutting everything cannot reach is a
    one-line :class:`ConfigError`."""
    check_reachable(structure, options, target_macs / structure.macs({}, {}))
    by_unit = options_by_unit(options)
    chosen: dict[str, Option] = {}
    while plan_macs(structure, chosen) > target_macs:
        chosen = _cheapest_step(structure, chosen, by_unit)
    return _relax(structure, chosen, by_unit, target_macs)


def _cheapest_step(structure: Structure, chosen: dict[str, Option], by_unit: dict[str, list[Option]]
                   ) -> dict[str, Option]:
    now = plan_macs(structure, chosen)
    best, best_key = None, None
    for unit, unit_options in by_unit.items():
        current = chosen[unit].score if unit in chosen else 0.0
        for option in unit_options:
            trial = {**chosen, unit: option}
            saved = now - plan_macs(structure, trial)
            if saved <= 0:
                continue
            key = (max(option.score - current, 0.0) / saved, -saved)
            if best_key is None or key < best_key:
                best, best_key = trial, key
    if best is None:
        raise ConfigError("no option lowers the plan's MACs further")
    return best


def _relax(structure: Structure, chosen: dict[str, Option], by_unit: dict[str, list[Option]],
           target_macs: int) -> dict[str, Option]:
    """Swap options for cheaper-scoring ones (or none) while the plan stays within the budget."""
    while True:
        total = sum(o.score for o in chosen.values())
        best, best_total = None, total
        for unit in chosen:
            for option in [None, *by_unit[unit]]:
                trial = {u: o for u, o in chosen.items() if u != unit}
                if option is not None:
                    trial[unit] = option
                score = sum(o.score for o in trial.values())
                if score < best_total - 1e-12 and plan_macs(structure, trial) <= target_macs:
                    best, best_total = trial, score
        if best is None:
            return chosen
        chosen = best


def plan_cuts(structure: Structure, chosen: dict[str, Option]) -> dict[str, LayerCut]:
    """The plan's cut per layer: its window and, for a cut group's producers, the kept channels."""
    windows, kept = {}, {}
    for option in chosen.values():
        cuts, _ = option_cuts(option, structure)
        for name, cut in cuts.items():
            if cut.window is not None:
                windows[name] = cut.window
            if cut.kept is not None:
                kept[name] = cut.kept
    return {name: LayerCut(windows.get(name), kept.get(name)) for name in structure.convs
            if name in windows or name in kept}


def cut_options(model: nn.Module, structure: Structure, settings: PlanSettings = PlanSettings()) -> list[Option]:
    """Every option of ``model`` (WAS attached with :data:`~wascompress.was.planned.PLAN_WAS`), not scored."""
    layers = list(was_layers(model))
    return (window_options(structure, model, layers) if settings.windows else []) + (
        channel_options(structure, settings) if settings.channels else [])


def scored_options(model: nn.Module, structure: Structure, fit_images: Tensor, held_out: Tensor,
                   settings: PlanSettings = PlanSettings()) -> list[Option]:
    """Every option of ``model``, scored (:class:`Scorer`)."""
    options = cut_options(model, structure, settings)
    return score_options(Scorer(copy.deepcopy(model), fit_images, held_out, settings), structure, options)


def check_reachable(structure: Structure, options: list[Option], target: float) -> None:
    """A one-line :class:`ConfigError` when cutting every unit as far as ``options`` allow stays over
    ``target`` of the dense MACs."""
    lowest = plan_macs(structure, {u: min(o, key=lambda x: plan_macs(structure, {u: x}))
                                   for u, o in options_by_unit(options).items()})
    dense = structure.macs({}, {})
    if lowest > target * dense:
        raise ConfigError(f"no plan reaches {target:.3f} of the MACs: cutting every layer as far as the options "
                          f"allow leaves {lowest / dense:.3f}")


def plan_for_budget(model: nn.Module, structure: Structure, scored: list[Option], target: float,
                    settings: PlanSettings = PlanSettings()) -> DomPlan:
    """The plan of least total score within ``target`` of the dense MACs, from scored options."""
    dense = structure.macs({}, {})
    chosen = allocate(structure, scored, int(target * dense))
    macs = plan_macs(structure, chosen)
    facts = {"predicted_macs": macs, "predicted_mac_ratio": macs / dense, "dense_macs": dense,
             "score": sum(o.score for o in chosen.values()),
             "options": {u: {"window": o.window, "keep": o.keep, "score": o.score} for u, o in chosen.items()},
             "layers": layer_table(structure, chosen)}
    return DomPlan(fingerprint(model), plan_cuts(structure, chosen), target, facts, settings.channel_step)
