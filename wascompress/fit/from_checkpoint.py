"""Fitting the DOMs of a checkpoint without training: the trained model in, one checkpoint out that holds
its AOM and every DOM fitted to it (``wascompress fit``), ready for ``export --target-macs R``.

The DOMs are a run's trained seeds, the seeds given, or one seed per MAC budget (the seed whose pruned graph
lands at or just under it, as ``train --target-macs`` picks them). A checkpoint trained without WAS needs
the WAS settings whose draws make its DOMs. The fit solves on the first training images of the run's
calibration order (:func:`wascompress.data.run_data.checkpoint_calibration_images`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from wascompress.checkpoint import Checkpoint, load_checkpoint
from wascompress.data.run_data import Splits, checkpoint_calibration, checkpoint_calibration_images, checkpoint_splits
from wascompress.errors import CheckpointError, ConfigError, DataError
from wascompress.export.budget import check_budget, closest_under, seed_costs
from wascompress.evaluate import count_correct
from wascompress.fit.layerwise import FitSettings, bn_state, fit_dom_, fit_seeds_, fit_summary, load_bn_state
from wascompress.was import (WASConfig, apply_was_, check_seed, has_was, plain_state_dict, recalibrate_bn_, set_draws_,
                             use_pw_, was_config)
from wascompress.was.shadow import Draws
from wascompress.was.fitted import correction_size
from wascompress.was.planned import PLAN_WAS, DomPlan, plan_key


@dataclass(frozen=True)
class FitRequest:
    """Which DOMs to fit and on what: ``target_macs`` budgets or ``dom_seeds`` (neither: the run's trained
    seeds); ``was`` for a checkpoint trained without WAS; ``images`` training images to solve on."""

    target_macs: tuple[float, ...] | None = None
    dom_seeds: tuple[int, ...] | None = None
    plans: tuple[DomPlan, ...] | None = None
    was: WASConfig | None = None
    images: int = 1024
    search_seeds: int = 32
    settings: FitSettings = FitSettings()

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.target_macs, self.dom_seeds, self.plans)) > 1:
            raise ConfigError("give one of --target-macs, --dom-seed and --plan")
        if self.plans is not None and self.was is not None:
            raise ConfigError("a planned DOM cuts any conv: give no WAS settings with --plan")
        for budget in self.target_macs or ():
            check_budget(budget)
        for seed in self.dom_seeds or ():
            check_seed(seed)
        for name in ("images", "search_seeds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name.replace('_', '-')} must be a positive integer, got {value!r}")


def plannable_model(loaded: Checkpoint, source: str) -> nn.Module:
    """The checkpoint's trained network (PW, AOM statistics) with :data:`PLAN_WAS` on every conv, so that a
    plan can cut any of them (a checkpoint trained with WAS: its PW; its own DOMs are left out)."""
    if loaded.model.custom_structure:
        raise CheckpointError(f"{source} holds a custom structure; plan its DOMs where it was built")
    model = loaded.build_model(with_was=False)
    apply_was_(model, PLAN_WAS)
    return model.eval()


def model_with_was(loaded: Checkpoint, was: WASConfig | None, source: str) -> nn.Module:
    """The checkpoint's model with its WAS, or with ``was`` when it was trained without."""
    model = loaded.build_model()
    if has_was(model) and was is not None:
        raise ConfigError(f"{source} has WAS settings of its own ({loaded.was_config.describe()}); give none")
    if not has_was(model):
        if was is None or not was.enabled:
            raise ConfigError(f"{source} was trained without WAS: give the WAS settings whose draws make its DOMs "
                              "(e.g. --crop 0.4 0.6)")
        apply_was_(model, was)
    return model


def choose_doms(loaded: Checkpoint, model: nn.Module, request: FitRequest, source: str) -> list[dict[str, Any]]:
    """One dict per DOM to fit: its ``seed`` (and ``target``, ``macs``, ``ratio`` for a budget)."""
    if request.target_macs is not None:
        costs = seed_costs(model, range(request.search_seeds), loaded.input_shape)
        picks = [closest_under(costs, target) for target in request.target_macs]  # all checked first
        return [{"target": t, **p.as_dict()} for t, p in zip(request.target_macs, picks)]
    seeds = request.dom_seeds or loaded.dom_seeds
    if not seeds:
        raise ConfigError(f"{source} trained no DOM seed: give --target-macs R or --dom-seed N")
    return [{"seed": s} for s in dict.fromkeys(seeds)]


def fit_checkpoint(source: str | Path, out: str | Path, request: FitRequest, *, data_dir: str | None = None,
                   overwrite: bool = False) -> dict[str, Any]:
    """Fit the DOMs ``request`` names to the model in ``source`` and write the checkpoint ``out``; returns
    what was fitted (also recorded in the new checkpoint's ``train_config["dom_budget"]``)."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} exists; pass --overwrite to replace it")
    if out.resolve() == Path(source).resolve():
        raise ConfigError("--out must not be the checkpoint read (the trained model stays as it was)")
    loaded = load_checkpoint(source)
    if loaded.model.custom_structure:
        raise CheckpointError(f"{source} holds a custom structure; fit its DOMs where it was built")
    model = (plannable_model(loaded, str(source)) if request.plans is not None
             else model_with_was(loaded, request.was, str(source)))
    doms = [] if request.plans is not None else choose_doms(loaded, model, request, str(source))
    for plan in request.plans or ():
        plan.draws(model)  # a plan made for another model: one line, before any data is read
    try:
        splits = checkpoint_splits(loaded, data_dir)
        images = checkpoint_calibration_images(loaded, splits, request.images)
    except DataError as err:
        raise DataError(f"{err} (the fit solves on the run's training images: pass --data-dir)") from None
    if request.plans is not None:
        fits, config = fit_plans_(model, loaded, request.plans, images, request.settings)
        for plan in request.plans:  # how each fitted DOM starts, before any training
            key = plan_key(plan.target_macs)
            fits[key]["val_top1"] = planned_val_accuracy(model, loaded, splits, plan.draws(model, key))
        doms = config["dom_plans"]
    else:
        seeds = [d["seed"] for d in doms]
        fits = fit_seeds_(model, seeds, images, request.settings)
        budget = {"chosen": [d for d in doms if "target" in d], "fits": fits}
        config = {**loaded.train_config, "dom_seeds": seeds, "eval_seed": seeds[0], "fit_doms": True,
                  "dom_budget": budget if budget["chosen"] else {"fits": fits}}
    fitted = replace(loaded, state_dict=plain_state_dict(model), train_config=config,
                     was=was_config(model).to_dict(), bn_stats="aom", optimizer=None, scheduler=None, rng=None)
    fitted.save(out)
    return {"source": str(source), "out": str(out), "doms": doms, "fits": fits}


def planned_val_accuracy(model: nn.Module, loaded: Checkpoint, splits: Splits, draws: Draws) -> float | None:
    """Validation top-1 of the DOM ``draws`` make, BatchNorm re-estimated on the run's calibration batches
    (None without validation images); the model is left in AOM with its own statistics."""
    if len(splits.val) == 0:
        return None
    saved = bn_state(model)
    try:
        set_draws_(model, draws)
        recalibrate_bn_(model, checkpoint_calibration(loaded, splits))
        return count_correct(model, splits.val).top1
    finally:
        use_pw_(model)
        load_bn_state(model, saved)


def fit_plans_(model: nn.Module, loaded: Checkpoint, plans: tuple[DomPlan, ...], images: Tensor,
               settings: FitSettings) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit every plan's DOM (its correction under :func:`plan_key` of its budget); the fits by key and the
    training configuration that records the plans (``dom_plans``: target, key, plan), no seeds."""
    fits = {}
    for plan in plans:
        key = plan_key(plan.target_macs)
        fits[key] = {**fit_summary(fit_dom_(model, plan.draws(model), key, images, settings)), "images": len(images),
                     "solver": settings.solver, "stored_numbers": correction_size(model, key)}
    recorded = [{"target": p.target_macs, "key": plan_key(p.target_macs), "ratio": p.facts.get("predicted_mac_ratio"),
                 "plan": p.to_dict()} for p in plans]
    config = {**loaded.train_config, "dom_seeds": [], "eval_seed": None, "fit_doms": True,
              "dom_budget": {"fits": fits}, "dom_plans": recorded}
    return fits, config

