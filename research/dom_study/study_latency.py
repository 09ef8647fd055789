"""Latency of every finished unit's deployed graph against the baseline's, taken apart from training in a
quiet moment, on graphs rebuilt with random weights from what the units record."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import torch

from study_rows import BUDGET, ROW_SETTINGS, row_was
from study_runs import Study, save_json, today, unit_files
from rows_pruning import conv_channels

from wascompress.export.exporter import ExportConfig, mode_model, prune_model
from wascompress.export.onnx_graph import onnx_bytes, to_onnx
from wascompress.models import create_model
from wascompress.models.cost import count_macs
from wascompress.profile.latency import TimingPlan, time_rounds
from wascompress.was import apply_was_

LATENCY_ROUNDS = 5  # fresh session pairs per measurement: one pair alone put the same graph at 0.96x and 1.20x
LATENCY_KEYS = ("baseline_ms_b", "ms_b", "latency_ratio_b")


def rebuild_pruned(model: str, width: float, structure: dict[str, int]) -> torch.nn.Module:
    """A zoo model (random weights) channel-pruned with torch-pruning to ``structure``'s channel counts."""
    import torch_pruning as tp

    net = create_model(model, num_classes=10, width=width).eval()
    example = torch.randn(1, 3, 32, 32)
    for name, channels in structure.items():
        conv = net.get_submodule(name)
        if conv.out_channels > channels:
            graph = tp.DependencyGraph().build_dependency(net, example_inputs=example)
            graph.get_pruning_group(conv, tp.prune_conv_out_channels,
                                    idxs=list(range(conv.out_channels - channels))).prune()
    if conv_channels(net) != structure:
        raise RuntimeError(f"could not rebuild the pruned structure of {model}")
    return net


def graph_spec(study: Study, unit: dict[str, Any]) -> tuple:
    """What a unit's deployed graph is built from, weights aside (hashable: rows deploying the same
    structure, such as a DOM and its scratch control, share one export)."""
    model, row = unit["model"], unit["row"]
    kind = ROW_SETTINGS[row]["kind"]
    if kind in ("baseline", "thin"):
        return ("plain", model, unit.get("thin_width", study.scale.width))
    if kind.startswith("torch-pruning"):
        return ("pruned", model, tuple(unit["structure"].items()))  # in module order, as recorded
    if kind == "plan":  # a planned DOM (and its competitor): the unit's own exported file
        return ("file", unit["onnx"])
    return ("dom", model, row_was(row, model), unit["dom_seed"])


def build_graph(study: Study, spec: tuple) -> torch.nn.Module:
    """The deployed graph of :func:`graph_spec` with random weights: latency depends on the structure only
    (ONNX Runtime computes zeros like any other weight), so it is timed apart from the trained files."""
    kind, model, *rest = spec
    if kind == "plain":
        return create_model(model, num_classes=10, width=rest[0]).eval()
    if kind == "pruned":
        return rebuild_pruned(model, study.scale.width, dict(rest[0]))
    was, dom_seed = rest
    net = create_model(model, num_classes=10, width=study.scale.width)
    apply_was_(net, was)
    config = ExportConfig(mode="dom", seed=dom_seed, recalibrate_bn=False)
    pruned, _ = prune_model(mode_model(net, config, None), config)
    return pruned


def measure_latency(study: Study, runs: int, again: bool = False, rounds: int = LATENCY_ROUNDS,
                    models: Collection[str] | None = None, rows: Collection[str] | None = None) -> None:
    """ONNX Runtime CPU latency of every finished unit's graph (of ``models`` and ``rows`` when given) at
    batch 1 and 32 against the baseline's, interleaved, in ``rounds`` rounds of fresh sessions (the
    median round of each; the median of the per-round ratios). A multi-budget unit's headline is its
    ``BUDGET`` graph's measurement, taken once."""
    with tempfile.TemporaryDirectory() as tmp:
        graphs: dict[tuple, tuple[Path, int]] = {}  # graph_spec -> (ONNX file, its MACs)

        def graph_file(unit: dict[str, Any]) -> Path:
            spec = graph_spec(study, unit)
            if spec[0] == "file":
                return Path(spec[1])
            if spec not in graphs:
                net = build_graph(study, spec)
                path = Path(tmp) / f"{len(graphs)}.onnx"
                path.write_bytes(onnx_bytes(to_onnx(net, (3, 32, 32))))
                graphs[spec] = path, count_macs(net)
            path, macs = graphs[spec]
            if unit["row"] != "baseline" and macs != unit["macs"]:
                raise RuntimeError(f"rebuilt graph of {unit['model']} {unit['row']} seed {unit['seed']} has "
                                   f"{macs:,} MACs, not {unit['macs']:,}")
            return path

        def time_against_baseline(base: Path, mine: Path, into: dict[str, Any]) -> None:
            inputs = {b: np.random.default_rng(0).standard_normal((b, 3, 32, 32), dtype=np.float32) for b in (1, 32)}
            plans = {b: TimingPlan(warmup=3, runs=runs * (4 if b == 1 else 1)) for b in inputs}
            (timed,) = time_rounds([{"baseline": base, "unit": mine}], inputs, plans, rounds=rounds)
            for batch, measured in timed.items():
                into[f"baseline_ms_b{batch}"] = measured.median("baseline") * 1e3
                into[f"ms_b{batch}"] = measured.median("unit") * 1e3
                into[f"latency_ratio_b{batch}"] = measured.median_ratio("unit", "baseline")

        for path in unit_files(study.results):
            unit = json.loads(path.read_text())
            if unit["row"] == "baseline" or ("latency_ratio_b32" in unit and not again):
                continue
            if (models and unit["model"] not in models) or (rows and unit["row"] not in rows):
                continue
            base = graph_file({"model": unit["model"], "row": "baseline", "seed": -1})
            budgets = unit.get("budgets", [])
            for budget in budgets:  # a multi-budget unit: every budget's graph
                time_against_baseline(base, graph_file({**unit, **budget}), budget)
                if "onnx" in budget.get("torch_pruning", {}):  # a plan unit's competitor at the budget's MACs
                    time_against_baseline(base, Path(budget["torch_pruning"]["onnx"]), budget["torch_pruning"])
            headline = next((b for b in budgets if b["target"] == BUDGET), None)
            if headline is None:
                time_against_baseline(base, graph_file(unit), unit)
            else:
                unit.update({key: value for key, value in headline.items() if key.startswith(LATENCY_KEYS)})
            unit["latency_date"], unit["latency_rounds"] = today(), rounds
            save_json(path, unit)
            print(f"{unit['model']} {unit['row']} seed {unit['seed']}: latency x{unit['latency_ratio_b1']:.3f} "
                  f"(batch 1), x{unit['latency_ratio_b32']:.3f} (batch 32)", flush=True)
