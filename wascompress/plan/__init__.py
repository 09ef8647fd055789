"""DOM plans: cuts chosen layer by layer (kernel windows, coupled channel groups) under a MAC budget."""

from __future__ import annotations

from wascompress.fit.from_checkpoint import plannable_model
from wascompress.plan.from_checkpoint import PlanRequest, plan_checkpoint
from wascompress.plan.search import PlanSettings, plan_for_budget, scored_options
from wascompress.plan.structure import Structure, model_structure

__all__ = ["PlanRequest", "PlanSettings", "Structure", "model_structure", "plan_checkpoint", "plan_for_budget",
           "plannable_model", "scored_options"]
