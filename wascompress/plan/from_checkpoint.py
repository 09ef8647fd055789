"""Planning the DOMs of a trained checkpoint (``wascompress plan``): its PW with every conv made cuttable
(:data:`~wascompress.was.planned.PLAN_WAS`), options scored on the run's own images (fitted on training
images, judged on validation images), one plan per budget from the same scores."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wascompress.checkpoint import Checkpoint, load_checkpoint
from wascompress.data.run_data import calibration_images, checkpoint_calibration_images, checkpoint_splits
from wascompress.errors import ConfigError, DataError
from wascompress.export.budget import check_budget
from wascompress.fit.from_checkpoint import plannable_model
from wascompress.plan.search import PlanSettings, check_reachable, cut_options, plan_for_budget, scored_options
from wascompress.plan.structure import model_structure
from wascompress.was.planned import DomPlan


@dataclass(frozen=True)
class PlanRequest:
    """Budgets (fractions of the dense MACs), training images the options are fitted on, validation
    images they are judged on, and the search's settings."""

    target_macs: tuple[float, ...]
    fit_images: int = 256
    score_images: int = 512
    settings: PlanSettings = PlanSettings()

    def __post_init__(self) -> None:
        if not self.target_macs:
            raise ConfigError("give at least one budget (--target-macs R)")
        for budget in self.target_macs:
            check_budget(budget)
        for name in ("fit_images", "score_images"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name.replace('_', '-')} must be a positive integer, got {value!r}")


def plan_images(loaded: Checkpoint, request: PlanRequest, data_dir: str | None) -> tuple[Any, Any]:
    """The training images the options are fitted on and the validation images they are judged on."""
    try:
        splits = checkpoint_splits(loaded, data_dir)
    except DataError as err:
        raise DataError(f"{err} (planning fits and judges cuts on the run's images: pass --data-dir)") from None
    if len(splits.val) == 0:
        raise DataError("the run has no validation images to judge cuts on (it was trained with --val-size 0)")
    fit = checkpoint_calibration_images(loaded, splits, request.fit_images)
    held_out = calibration_images(splits.val, request.score_images, 128, seed=1)
    return fit, held_out


def plan_checkpoint(source: str | Path, request: PlanRequest, *, data_dir: str | None = None
                    ) -> tuple[list[DomPlan], dict[str, Any]]:
    """One plan per budget of ``request`` for the model in ``source``; and what the search did (options
    scored, seconds)."""
    began = time.perf_counter()
    loaded = load_checkpoint(source)
    model = plannable_model(loaded, str(source))
    structure = model_structure(loaded.build_model(with_was=False), loaded.input_shape)
    for target in request.target_macs:  # before any data is read or option scored
        check_reachable(structure, cut_options(model, structure, request.settings), target)
    fit, held_out = plan_images(loaded, request, data_dir)
    scored = scored_options(model, structure, fit, held_out, request.settings)
    plans = [plan_for_budget(model, structure, scored, target, request.settings) for target in request.target_macs]
    return plans, {"options": len(scored), "seconds": time.perf_counter() - began,
                   "fit_images": len(fit), "score_images": len(held_out)}
