"""The sandwich a training configuration asks for (docs/method.md §6): the set of forwards one WAS step
trains to keep the deployed sub-networks accurate — the DOM seed each MAC budget picks, the frozen teacher,
the :class:`~wascompress.train.step.Sandwich` itself, and its one-line description."""

from __future__ import annotations

import logging
from dataclasses import replace

import torch
from torch import nn

from wascompress.checkpoint import load_checkpoint
from wascompress.models import create_model
from wascompress.train.config import INIT_TEACHER, TrainConfig
from wascompress.train.step import Distillation, Sandwich
from wascompress.was import dom_draws, strip_was_
from wascompress.was.fitted import trained_correction
from wascompress.weights import WeightsFile, load_weights_, read_weights

log = logging.getLogger("wascompress.train.trainer")


def choose_dom_seeds(config: TrainConfig, model: nn.Module, input_shape: tuple[int, int, int]) -> TrainConfig:
    """``config`` with one DOM seed per MAC budget of ``target_macs``: the seed whose pruned graph lands
    at or just under it (a budget no seed reaches is one clear line, before any training)."""
    from wascompress.export.budget import closest_under, seed_costs, smallest_draw_ratio

    costs = seed_costs(model, range(config.search_seeds), input_shape)
    cheapest = min(c.ratio for c in costs)
    floor = (smallest_draw_ratio(model, input_shape)  # only when a budget is missed: is it the seeds or the ranges?
             if any(target < cheapest for target in config.target_macs or ()) else None)
    picks = [closest_under(costs, target, floor) for target in config.target_macs or ()]  # all checked, then told
    chosen = []
    for target, pick in zip(config.target_macs or (), picks):
        log.info("DOM seed %d for budget %g: pruned graph at %.3f of the AOM's MACs (%s MACs; %d seeds tried)",
                 pick.seed, target, pick.ratio, f"{pick.macs:,}", len(costs))
        chosen.append({"target": target, **pick.as_dict()})
    seeds = tuple(dict.fromkeys(c["seed"] for c in chosen))  # two budgets may pick the same seed
    return replace(config, dom_seeds=seeds, dom_budget={"chosen": chosen, "tried": [c.as_dict() for c in costs]})


def frozen_teacher(config: TrainConfig, start: WeightsFile | None, num_classes: int,
                   device: torch.device) -> nn.Module:
    """The frozen teacher ``config.teacher`` names: the start weights ("init") or a weights file (a
    wascompress checkpoint brings its own architecture; a state_dict must fit the trained one). Eval mode,
    no gradient, not part of the trained model (so never in a checkpoint)."""
    weights = start if config.teacher == INIT_TEACHER else read_weights(config.teacher)
    assert weights is not None
    if weights.kind == "wascompress-checkpoint":
        teacher = strip_was_(load_checkpoint(weights.path).build_model())
    else:
        teacher = load_weights_(create_model(config.model, num_classes=num_classes, width=config.width,
                                             kwargs=config.model_kwargs), weights, config.model)
    teacher = teacher.to(device).eval()
    if config.channels_last:
        teacher = teacher.to(memory_format=torch.channels_last)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def sandwich_for(config: TrainConfig, model: nn.Module, teacher: nn.Module | None = None) -> Sandwich | None:
    """The sandwich ``config`` asks for (None: the paper's step); ``teacher`` is its frozen teacher."""
    if not config.sandwich:
        return None
    distill = (Distillation(config.distill_weight, config.distill_temperature)
               if config.distill or teacher is not None else None)
    seeds = config.dom_seeds
    fixed = tuple(dom_draws(model, s, trained_correction(s, config.fit_doms, seeds)) for s in seeds)
    return Sandwich(fixed=fixed, random_samples=config.was_samples,
                    train_pw=config.train_pw, distill=distill, teacher=teacher, in_place=config.distill)


def describe_step(config: TrainConfig, sandwich: Sandwich | None) -> str:
    if config.was is None:
        return "plain"
    if sandwich is None:
        what = f"one random SW ({config.was.describe()})"
    else:
        parts = (["AOM on the labels"] if sandwich.train_pw else []) + [f"DOM seed {s}" for s in config.dom_seeds]
        parts += [f"{sandwich.random_samples} random SW"] if sandwich.random_samples else []
        sources = ((["the frozen start weights" if config.teacher == INIT_TEACHER else f"frozen {config.teacher}"]
                    if config.teacher is not None else []) + (["the AOM forward"] if config.distill else []))
        what = " + ".join(parts) + (f", distilled from {' and '.join(sources)} (weight {config.distill_weight:g}, "
                                    f"T {config.distill_temperature:g})" if sandwich.distill else "")
    warm = f"; PW alone for the first {config.was_warmup} epochs" if config.was_warmup else ""
    return what + warm
