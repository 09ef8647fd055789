"""MAC budgets: which DOM seeds make a pruned graph at or under a fraction of the AOM's MACs.

A user thinks in budgets ("half the MACs"), not in seeds. The MACs of a DOM seed's pruned graph follow
from its draws (kernel windows, zero filters) and the model's structure, so they are known before any
training: each seed's SW is frozen and pruned exactly as the exporter does (:func:`prune_model`) and
counted. Zero-filter removal is verified on the weights at hand, so where a removal depends on them
(a channel meeting a residual addition) the export of trained weights is what finally counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from wascompress.errors import ConfigError
from wascompress.export.exporter import ExportConfig, mode_model, prune_model
from wascompress.models.cost import count_macs


@dataclass(frozen=True)
class SeedCost:
    """The pruned graph of one DOM seed."""

    seed: int
    macs: int
    ratio: float  # macs / the AOM's macs

    def as_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "macs": self.macs, "ratio": self.ratio}


def aom_macs(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """MACs of the model's AOM graph (Plain Weights; BatchNorm folded, as exported)."""
    return count_macs(mode_model(model, ExportConfig(mode="aom"), None), input_shape)


def pruned_macs(model: nn.Module, seed: int, input_shape: tuple[int, int, int],
                channel_align: int | None = None) -> int:
    """MACs of the pruned DOM graph that ``seed`` exports to (the model is not changed)."""
    config = ExportConfig(mode="dom", seed=seed, recalibrate_bn=False, input_shape=input_shape,
                          **({"channel_align": channel_align} if channel_align is not None else {}))
    pruned, _ = prune_model(mode_model(model, config, None), config)
    return count_macs(pruned, input_shape)


def seed_costs(model: nn.Module, seeds: range | list[int], input_shape: tuple[int, int, int],
               channel_align: int | None = None) -> list[SeedCost]:
    """The pruned MACs of each seed, as a fraction of the AOM's."""
    dense = aom_macs(model, input_shape)
    costs = []
    for seed in seeds:
        macs = pruned_macs(model, seed, input_shape, channel_align)
        costs.append(SeedCost(seed, macs, macs / dense))
    return costs


def check_budget(ratio: object) -> float:
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
        raise ConfigError(f"a MAC budget is a fraction of the AOM's MACs in (0, 1], got {ratio!r}")
    return float(ratio)


def within_budget(costs: list[SeedCost], ratio: float) -> list[SeedCost]:
    """The seeds at or under ``ratio``; a one-line error naming the cheapest seed when there is none."""
    check_budget(ratio)
    inside = [c for c in costs if c.ratio <= ratio + 1e-12]
    if not inside:
        cheapest = min(costs, key=lambda c: (c.ratio, c.seed))
        raise ConfigError(f"no DOM seed of the {len(costs)} tried reaches {ratio:g} of the AOM's MACs: the "
                          f"cheapest, seed {cheapest.seed}, needs {cheapest.ratio:.3f}; try more seeds or "
                          "WAS settings that remove more (a smaller crop range, filter)")
    return inside


def closest_under(costs: list[SeedCost], ratio: float) -> SeedCost:
    """The seed whose pruned graph lands at or just under ``ratio`` (the most MACs within the budget;
    the lowest seed on a tie)."""
    return max(within_budget(costs, ratio), key=lambda c: (c.ratio, -c.seed))
