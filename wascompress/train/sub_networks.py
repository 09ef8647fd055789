"""Training the deployed sub-network on purpose (METHOD.md §6): the DOM seed a MAC budget picks, the
sandwich recipe a configuration asks for, and its one-line description."""

from __future__ import annotations

import logging
from dataclasses import replace

import torch
from torch import nn

from wascompress.checkpoint import load_checkpoint
from wascompress.train.config import TrainConfig
from wascompress.train.step import Distillation, Sandwich
from wascompress.was import dom_draws, strip_was_

log = logging.getLogger("wascompress.train.trainer")


def initial_weights(path: str) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["state_dict"]


def choose_dom_seed(config: TrainConfig, model: nn.Module, input_shape: tuple[int, int, int]) -> TrainConfig:
    """``config`` with the DOM seed whose pruned graph lands at or just under ``dom_target_macs``."""
    from wascompress.export.budget import closest_under, seed_costs

    costs = seed_costs(model, range(config.dom_search_seeds), input_shape)
    chosen = closest_under(costs, config.dom_target_macs)
    log.info("DOM seed %d: pruned graph at %.3f of the AOM's MACs (%s MACs; budget %g, %d seeds tried)",
             chosen.seed, chosen.ratio, f"{chosen.macs:,}", config.dom_target_macs, len(costs))
    return replace(config, dom_seeds=(chosen.seed,), dom_budget={
        "target": config.dom_target_macs, "chosen": chosen.as_dict(), "tried": [c.as_dict() for c in costs]})


def sub_network_recipe(config: TrainConfig, model: nn.Module, device: torch.device) -> Sandwich | None:
    """The sandwich step ``config`` asks for (None: the paper's step)."""
    if not config.sandwich:
        return None
    teacher = None
    if config.distill and config.teacher == "checkpoint":
        from wascompress.checkpoint import build_model

        teacher = strip_was_(build_model(load_checkpoint(config.init_checkpoint))).to(device).eval()
        if config.channels_last:
            teacher = teacher.to(memory_format=torch.channels_last)
        for p in teacher.parameters():
            p.requires_grad_(False)
    distill = Distillation(config.distill_weight, config.distill_temperature) if config.distill else None
    return Sandwich(fixed=tuple(dom_draws(model, s) for s in config.dom_seeds), random_samples=config.was_samples,
                    train_pw=config.train_pw, distill=distill, teacher=teacher)


def describe_step(config: TrainConfig, recipe: Sandwich | None) -> str:
    if config.was is None:
        return "plain"
    if recipe is None:
        what = f"one random SW ({config.was.describe()})"
    else:
        parts = (["AOM on the labels"] if recipe.train_pw else []) + [f"DOM seed {s}" for s in config.dom_seeds]
        parts += [f"{recipe.random_samples} random SW"] if recipe.random_samples else []
        what = " + ".join(parts) + (f", distilled from the {config.teacher} (weight {config.distill_weight:g}, "
                                    f"T {config.distill_temperature:g})" if recipe.distill else "")
    warm = f"; PW alone for the first {config.was_warmup} epochs" if config.was_warmup else ""
    return what + warm
