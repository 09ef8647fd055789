"""MAC budgets: which DOM seeds make a pruned graph at or under a fraction of the AOM's MACs.

A user thinks in budgets ("half the MACs"), not in seeds. The MACs of a DOM seed's pruned graph follow
from its draws (kernel windows, zero filters) and the model's structure, so they are known before any
training: each seed's SW is frozen and pruned exactly as the exporter does (:func:`prune_model`) and
counted. Zero-filter removal is verified on the weights at hand, so where a removal depends on them
(a channel meeting a residual addition) the export of trained weights is what finally counts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
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


def within_budget(costs: list[SeedCost], ratio: float, floor: float | None = None) -> list[SeedCost]:
    """The seeds at or under ``ratio``; a one-line error naming the cheapest seed when there is none, and
    suggesting more seeds only where ``floor`` (the MAC ratio of the smallest draw the WAS settings allow,
    :func:`smallest_draw_ratio`) shows that some seed could reach it."""
    check_budget(ratio)
    inside = [c for c in costs if c.ratio <= ratio + 1e-12]
    if not inside:
        cheapest = min(costs, key=lambda c: (c.ratio, c.seed))
        if floor is not None and floor > ratio + 1e-12:
            hint = (f"no seed can: the smallest draw these WAS settings allow needs {floor:.3f}; lower the crop "
                    "or filter range's LO")
        else:
            hint = "try more seeds (--search-seeds) or WAS settings that remove more (a lower crop or filter LO)"
        raise ConfigError(f"no DOM seed of the {len(costs)} tried reaches {ratio:g} of the AOM's MACs: the "
                          f"cheapest, seed {cheapest.seed}, needs {cheapest.ratio:.3f}; {hint}")
    return inside


def smallest_draw_ratio(model: nn.Module, input_shape: tuple[int, int, int]) -> float | None:
    """The MAC ratio of the pruned graph when every WAS layer draws its smallest window and fewest filters
    (the ranges' LO, no translation), or None when the settings have no such single smallest draw."""
    import copy

    from wascompress.was import apply_was_, strip_was_, was_config

    config = was_config(model)
    if config.translate or config.rotate or config.policy != "compose" or config.transform_layers:
        return None
    lowest = {"filter": (config.filter[0],) * 2} if config.filter is not None else {}
    plain = strip_was_(copy.deepcopy(model))
    crops = [None] if config.crop is None else window_areas(plain, config.crop[0])
    for top in crops:  # the narrowest crop range at LO that every WAS layer's kernel admits a window in
        smallest = copy.deepcopy(plain)
        try:
            apply_was_(smallest, replace(config, prob=1.0, **lowest, **({"crop": (config.crop[0], top)} if top else {})))
        except ConfigError:
            continue
        return seed_costs(smallest, [0], input_shape)[0].ratio
    return None


def window_areas(model: nn.Module, low: float) -> list[float]:
    """The window area fractions at or over ``low`` that the model's conv kernels allow, ascending."""
    areas = {(a * b) / (m.kernel_size[0] * m.kernel_size[1]) for m in model.modules() if isinstance(m, nn.Conv2d)
             for a in range(1, m.kernel_size[0] + 1) for b in range(1, m.kernel_size[1] + 1)}
    return sorted(a for a in areas if a >= low - 1e-9)


def closest_under(costs: list[SeedCost], ratio: float, floor: float | None = None) -> SeedCost:
    """The seed whose pruned graph lands at or just under ``ratio`` (the most MACs within the budget;
    the lowest seed on a tie); ``floor`` as :func:`within_budget` takes it."""
    return max(within_budget(costs, ratio, floor), key=lambda c: (c.ratio, -c.seed))
