"""The study's table (mean and spread over seeds per model x row), paired differences and the goal
check, computed from the unit JSON."""

from __future__ import annotations

import statistics
from typing import Any

from study_rows import BUDGET, COMPETITORS, CONTROLS, DOM_ROWS, ROWS


def mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values)}


def table(units: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per model x study row: means and standard deviations over seeds."""
    out = []
    for model in dict.fromkeys(u["model"] for u in units):
        base = [u for u in units if u["model"] == model and u["row"] == "baseline"]
        base_macs = base[0]["macs"] if base else None
        for row in ROWS:
            group = [u for u in units if u["model"] == model and u["row"] == row]
            if not group:
                continue
            entry: dict[str, Any] = {"model": model, "row": row, "seeds": [u["seed"] for u in group],
                                     "epochs": " / ".join(dict.fromkeys(u["epochs"] for u in group)),  # per seed where they differ
                                     "top1_by_seed": {u["seed"]: u["test_top1"] for u in group}}
            for key in ("test_top1", "aom_test_top1", "macs", "params", "train_wall_s", "train_quiet_s",
                        "latency_ratio_b1",
                        "latency_ratio_b32"):
                values = [u[key] for u in group if u.get(key) is not None]
                entry[key] = mean_std(values) if values else None
            entry["mac_ratio"] = entry["macs"]["mean"] / base_macs if base_macs else None
            out.append(entry)
    return out


def paired_difference(row: dict[str, Any], other: dict[str, Any]) -> dict[str, float] | None:
    """``row``'s test top-1 minus ``other``'s in points, seed by seed over the seeds both have (the same
    seed is the same data split and order, so seed noise cancels in pairs): mean, std and n of those
    differences; None if they share no seed."""
    mine, theirs = row["top1_by_seed"], other["top1_by_seed"]
    common = shared_seeds(row, other)
    return mean_std([(mine[seed] - theirs[seed]) * 100 for seed in common]) if common else None


def paired_points(row: dict[str, Any], other: dict[str, Any]) -> float | None:
    """The mean of :func:`paired_difference`, in points."""
    difference = paired_difference(row, other)
    return difference["mean"] if difference else None


def shared_seeds(row: dict[str, Any], other: dict[str, Any]) -> list[int]:
    return sorted(seed for seed in row["top1_by_seed"] if seed in other["top1_by_seed"])


GOAL_POINTS = 1.0  # the goal: a DOM row at most this many points under the baseline


def goal_check(row: dict[str, Any], rows: dict[str, dict[str, Any]], control: str = "scratch",
               competitor: str = "torch-pruning") -> dict[str, Any] | None:
    """Whether a DOM row meets the issue's goal: at most ``BUDGET`` of the baseline's MACs, at most
    ``GOAL_POINTS`` under the baseline, and at least as accurate as its torch-pruning competitor (at
    equal epochs; beside ``torch-pruning``, also at equal training time: ``torch-pruning-walltime``, the
    same row of the issue) and its scratch control, each difference paired by seed. ``rows`` maps the
    model's row names to rows. Returns ``met``, ``shortfalls`` (one phrase per failed condition) and
    ``seeds_beyond`` (seed -> points against the baseline where one seed alone is beyond the line);
    None until the baseline, competitor and control share a seed with the row."""
    floors = {"baseline": -GOAL_POINTS, competitor: 0.0, control: 0.0}
    if competitor == "torch-pruning":
        floors["torch-pruning-walltime"] = 0.0
    differences = {name: paired_difference(row, rows[name]) for name in floors if name in rows}
    differences = {name: d for name, d in differences.items() if d is not None}
    if any(name not in differences for name in ("baseline", competitor, control)):
        return None
    shortfalls = []
    if row["mac_ratio"] is None or row["mac_ratio"] > BUDGET + 1e-9:
        shortfalls.append(f"over {BUDGET} of the baseline's MACs")
    for name, d in differences.items():
        if d["mean"] < floors[name]:
            shortfalls.append(f"{-d['mean']:.2f} points under the baseline, {floors[name] - d['mean']:.2f} beyond the "
                              f"{GOAL_POINTS:g}-point line" if name == "baseline" else f"{-d['mean']:.2f} points under {name}")
    base = rows["baseline"]["top1_by_seed"]
    beyond = {seed: (top1 - base[seed]) * 100 for seed, top1 in sorted(row["top1_by_seed"].items())
              if seed in base and (top1 - base[seed]) * 100 < -GOAL_POINTS}
    return {"met": not shortfalls, "shortfalls": shortfalls, "seeds_beyond": beyond}


def goal_phrase(check: dict[str, Any]) -> str:
    """A goal check in words: "meets the goal", "meets the goal on the mean (not on seed 1: -1.79)", or
    "misses the goal (...)"."""
    if not check["met"]:
        return f"misses the goal ({'; '.join(check['shortfalls'])})"
    if check["seeds_beyond"]:
        seeds = ", ".join(f"seed {seed}: {points:+.2f}" for seed, points in check["seeds_beyond"].items())
        return f"meets the goal on the mean, not on every seed against the baseline ({seeds})"
    return "meets the goal"


def summary(units: list[dict[str, Any]]) -> dict[str, Any]:
    rows = table(units)
    by = {(r["model"], r["row"]): r for r in rows}
    models = list(dict.fromkeys(r["model"] for r in rows))
    facts: dict[str, Any] = {"models": {}}
    for model in models:
        base = by.get((model, "baseline"))
        doms = [by[(model, r)] for r in DOM_ROWS if (model, r) in by
                and by[(model, r)]["mac_ratio"] is not None and by[(model, r)]["mac_ratio"] <= BUDGET + 1e-9]
        best = max(doms, key=lambda r: r["test_top1"]["mean"]) if doms else None
        competitor = COMPETITORS.get(best["row"], "torch-pruning") if best else None
        pruning = by.get((model, competitor)) if best else None
        walltime = by.get((model, "torch-pruning-walltime")) if pruning and competitor == "torch-pruning" else None
        named = {row: r for (m, row), r in by.items() if m == model}
        check = goal_check(best, named, CONTROLS.get(best["row"], "scratch"), competitor) if best and base else None
        facts["models"][model] = {
            "baseline_top1": base["test_top1"]["mean"] * 100 if base else None,
            "best_dom_row": best["row"] if best else None,
            "best_dom_top1": best["test_top1"]["mean"] * 100 if best else None,
            "best_dom_gap_points": paired_points(base, best) if base and best else None,
            "gap_seeds": shared_seeds(base, best) if base and best else [],
            "dom_minus_torch_pruning_points": paired_points(best, pruning) if best and pruning else None,
            "dom_minus_torch_pruning_walltime_points": paired_points(best, walltime) if best and walltime else None,
            "goal": check,
        }
    per = facts["models"].values()
    pick = lambda key, fn: fn([m[key] for m in per if m[key] is not None], default=None)  # noqa: E731
    facts["min_baseline_top1"] = pick("baseline_top1", min)
    facts["best_dom_gap_points"] = pick("best_dom_gap_points", max)
    facts["dom_minus_torch_pruning_points"] = pick("dom_minus_torch_pruning_points", min)
    facts["dom_minus_torch_pruning_walltime_points"] = pick("dom_minus_torch_pruning_walltime_points", min)
    checks = {model: m["goal"] for model, m in facts["models"].items()}
    facts["goal_met"] = bool(checks) and all(c is not None and c["met"] for c in checks.values())
    facts["table"] = rows
    return facts
