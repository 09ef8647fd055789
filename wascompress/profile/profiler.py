"""The side-by-side profile of ONNX models: cost, size, latency per provider and batch, optional accuracy.

The first model is the reference (normally AOM): every ratio is taken against it. MACs are counted from
each graph (:mod:`.onnx_cost`) and, where the export's JSON report lies beside the file, cross-checked
against thop's count of the PyTorch model it was exported from.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wascompress.errors import ConfigError
from wascompress.profile.latency import TimingPlan, make_session, resolve_providers, summarize, time_interleaved
from wascompress.profile.onnx_cost import graph_inputs, input_shape, load_model, onnx_cost

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProfileRequest:
    models: tuple[Path, ...]
    providers: tuple[str, ...] = ("cpu",)
    batch_sizes: tuple[int, ...] = (1, 32)
    plan: TimingPlan = TimingPlan()
    skip_missing: bool = False
    dataset: str | None = None  # measure test accuracy on this data set through ONNX Runtime
    data_dir: str | None = None
    limit_test: int | None = None

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigError("give at least one ONNX model")
        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            raise ConfigError(f"batch sizes must be positive integers, got {list(self.batch_sizes)}")


def _export_report(path: Path) -> dict[str, Any] | None:
    report = path.with_suffix(".json")
    if report.is_file():
        try:
            data = json.loads(report.read_text())
            return data if isinstance(data, dict) and "cost" in data else None
        except ValueError:
            return None
    return None


def describe_model(path: Path) -> dict[str, Any]:
    """Cost, size and metadata of one ONNX file (no timing)."""
    proto = load_model(path)
    cost = onnx_cost(proto)
    meta = {p.key: p.value for p in proto.metadata_props}
    entry: dict[str, Any] = {
        "name": path.stem, "path": str(path), "file_bytes": path.stat().st_size,
        "input_name": graph_inputs(proto)[0].name, "input_shape": list(input_shape(proto)),
        "mode": meta.get("wascompress.mode"), "seed": meta.get("wascompress.seed") or None,
        **cost.as_dict(),
    }
    entry["sparsity"] = 1 - cost.nonzero_params / cost.params if cost.params else 0.0
    export = _export_report(path)
    if export is not None:
        entry["thop_macs"] = export["cost"]["macs"]
        entry["thop_match"] = export["cost"]["macs"] == cost.macs
    return entry


def onnx_accuracy(path: str | Path, data: Any, input_name: str = "input", threads: int = 0,
                  batch_size: int = 256) -> float:
    """Top-1 of an ONNX model on an ImageSet through ONNX Runtime (CPU)."""
    from wascompress.data import BatchLoader

    session = make_session(path, "CPUExecutionProvider", threads)
    correct = 0
    for images, labels in BatchLoader(data, batch_size, shuffle=False):
        logits = session.run(None, {input_name: images.numpy()})[0]
        correct += int((logits.argmax(1) == labels.numpy()).sum())
    return correct / len(data)


def dataset_accuracy(path: Path, entry: dict[str, Any], request: ProfileRequest) -> float:
    """Top-1 of the model on the requested test split."""
    from wascompress.data import limit, load_dataset

    data = limit(load_dataset(request.dataset, request.data_dir, train=False), request.limit_test)
    return onnx_accuracy(path, data, entry["input_name"], request.plan.threads)


def profile(request: ProfileRequest) -> dict[str, Any]:
    """Profile every model; returns the report (models, latency per provider and batch, ratios)."""
    providers = resolve_providers(list(request.providers), request.skip_missing)
    entries = [describe_model(Path(p)) for p in request.models]
    shapes = {tuple(e["input_shape"][1:]) for e in entries}
    if len(shapes) > 1:
        listed = ", ".join(f"{e['name']} {e['input_shape'][1:]}" for e in entries)
        raise ConfigError(f"the models take different input shapes: {listed}")
    per_image = entries[0]["input_shape"][1:]
    rng = np.random.default_rng(0)
    latency = []
    for short, provider in providers:
        sessions = [make_session(e["path"], provider, request.plan.threads) for e in entries]
        for batch in request.batch_sizes:
            x = rng.standard_normal((batch, *per_image), dtype=np.float32)
            times = time_interleaved(sessions, entries[0]["input_name"], x, request.plan)
            stats = [summarize(t, batch) for t in times]
            for entry, stat in zip(entries, stats):
                latency.append({"model": entry["name"], "provider": short, "batch": batch, **stat,
                                "p50_ratio": stat["p50_ms"] / stats[0]["p50_ms"]})
    if request.dataset:
        for entry in entries:
            entry["test_accuracy"] = dataset_accuracy(Path(entry["path"]), entry, request)
    reference = entries[0]
    for entry in entries:
        entry["ratios"] = {
            "macs": entry["macs"] / reference["macs"],
            "effective_macs": entry["effective_macs"] / reference["effective_macs"],
            "params": entry["params"] / reference["params"],
            "file_bytes": entry["file_bytes"] / reference["file_bytes"],
        }
    return {"reference": reference["name"], "models": entries, "latency": latency,
            "providers": [p for p, _ in providers], "batch_sizes": list(request.batch_sizes),
            "plan": {"warmup": request.plan.warmup, "runs": request.plan.runs, "budget_s": request.plan.budget_s,
                     "threads": request.plan.threads}}
