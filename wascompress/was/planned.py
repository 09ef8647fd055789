"""A planned DOM: the cuts chosen layer by layer, stored explicitly instead of drawn from a seed.

A seed names one of the paper's random draws. A plan (:mod:`wascompress.plan` makes one) names, for each
WAS layer, a kernel window (or the whole kernel) and the output filters it keeps (or all); coupled layers
(a residual addition's producers) keep the same filters. It is plain data, saved as JSON and stored in a
checkpoint under its budget, and it becomes draws (a :class:`CropWindow` and a :class:`FilterKeep` per
layer), so every path that runs draws (fitting, BatchNorm re-estimation, freezing, export) runs a plan.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from wascompress.errors import ConfigError
from wascompress.was.config import WASConfig
from wascompress.was.shadow import Draws, was_layers, with_correction
from wascompress.was.transforms import CropWindow, Draw, FilterKeep

PLAN_FORMAT = "wascompress-plan/1"

PLAN_WAS = WASConfig(crop=(0.1, 1.0), filter=(0.1, 1.0), min_kernel=1, skip_first=False)
"""The WAS settings a planned DOM runs under: every conv a WAS layer (so any of them can be cut), the
ranges wide enough for any window and filter count. A plan's draws never come from these ranges."""


@dataclass(frozen=True)
class LayerCut:
    """One layer's cut: the kept window ``(top, left, height, width)`` (None: the whole kernel) and the
    kept output filters, sorted (None: all)."""

    window: tuple[int, int, int, int] | None = None
    kept: tuple[int, ...] | None = None

    def draws(self) -> tuple[Draw, ...]:
        found: list[Draw] = []
        if self.window is not None:
            found.append(CropWindow(*self.window))
        if self.kept is not None:
            found.append(FilterKeep(self.kept))
        return tuple(found)

    def to_dict(self) -> dict[str, Any]:
        return {"window": list(self.window) if self.window else None,
                "kept": list(self.kept) if self.kept is not None else None}


@dataclass(frozen=True)
class DomPlan:
    """Every cut layer's :class:`LayerCut` (layers left out run PW's whole kernel and filters), the model's
    :func:`fingerprint`, the budget it was made for, what the planner predicted and measured, and the
    channel step its kept channels come in."""

    fingerprint: str
    cuts: dict[str, LayerCut]
    target_macs: float | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    channel_step: int = 16  # kept channels are multiples of this: the export removes filters down to it

    def to_dict(self) -> dict[str, Any]:
        return {"format": PLAN_FORMAT, "fingerprint": self.fingerprint, "target_macs": self.target_macs,
                "channel_step": self.channel_step,
                "cuts": {name: cut.to_dict() for name, cut in self.cuts.items()}, "facts": self.facts}

    @classmethod
    def from_dict(cls, data: Any, source: str = "plan") -> "DomPlan":
        if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT:
            raise ConfigError(f"{source} is not a wascompress DOM plan ({PLAN_FORMAT})")
        try:
            cuts = {name: LayerCut(tuple(c["window"]) if c["window"] else None,
                                   tuple(int(i) for i in c["kept"]) if c["kept"] is not None else None)
                    for name, c in data["cuts"].items()}
            return cls(str(data["fingerprint"]), cuts, data.get("target_macs"), dict(data.get("facts") or {}),
                       int(data.get("channel_step", 16)))
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"{source} is not a valid DOM plan ({err})") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1) + "\n"

    def draws(self, model: nn.Module, fitted: str | None = None) -> Draws:
        """The plan as draws of ``model``'s WAS layers (with the fitted correction ``fitted``, if given);
        a plan made for another model is a one-line :class:`ConfigError`."""
        check_plan_fits(self, model)
        layers = was_layers(model)
        missing = sorted(set(self.cuts) - set(layers))
        if missing:
            raise ConfigError(f"the plan cuts layers that are not WAS layers of this model: {', '.join(missing[:3])}")
        draws = {name: (self.cuts[name].draws() if name in self.cuts else ()) for name in layers}
        return draws if fitted is None else with_correction(draws, fitted)


def fingerprint(model: nn.Module) -> str:
    """The identity of a model's structure: its convs' and linear layers' names and weight shapes."""
    digest = hashlib.sha256()
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            shape = tuple(module.weight.shape)
            digest.update(f"{name}:{shape};".encode())
    return digest.hexdigest()[:16]


def check_plan_fits(plan: DomPlan, model: nn.Module) -> None:
    if plan.fingerprint != fingerprint(model):
        raise ConfigError("the DOM plan was made for another model (its layers and shapes differ from this one's)")


def plan_key(target: float) -> str:
    """The key of a budget's planned DOM and its fitted correction (``plan0_5`` for 0.5)."""
    return "plan" + f"{target:g}".replace(".", "_").replace("-", "m")


PLANS_FORMAT = "wascompress-plans/1"


def plans_to_json(plans: list[DomPlan]) -> str:
    """A plans file: one plan per budget."""
    return json.dumps({"format": PLANS_FORMAT, "plans": [p.to_dict() for p in plans]}, indent=1) + "\n"


def read_plans(path: str) -> list[DomPlan]:
    """The plans of a plans file (``wascompress plan --out``); a file that is not one is a one-line error."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot read plans file {path}: {err}") from None
    if not isinstance(data, dict) or data.get("format") != PLANS_FORMAT or not isinstance(data.get("plans"), list):
        raise ConfigError(f"{path} is not a wascompress plans file ({PLANS_FORMAT}; write one with wascompress plan --out)")
    plans = [DomPlan.from_dict(p, path) for p in data["plans"]]
    if not plans or any(p.target_macs is None for p in plans):
        raise ConfigError(f"{path} holds no plan for a MAC budget")
    return plans
