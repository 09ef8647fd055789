"""The side-by-side profile of ONNX models: cost, size, latency per provider and batch, optional accuracy.

Any ONNX model with one float input can be profiled, each fed under its own input name; an image
input's symbolic height and width take ``image_size`` (a symbolic channel count, ``channels``). Models
are rows keyed by path, labelled by file stem, with as many parent folders as keep the labels distinct
(or by the given ``labels``). The first model is the reference (normally AOM): every ratio is taken
against it. MACs are counted from each graph (:mod:`.onnx_cost`) and, where the export's JSON report
lies beside the file, cross-checked against thop's count of the PyTorch model it was exported from.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wascompress.errors import ConfigError
from wascompress.profile.latency import TimingPlan, resolve_providers, summarize, time_rounds
from wascompress.profile.onnx_cost import load_model, model_input, onnx_cost

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
    image_size: tuple[int, int] | None = None  # (H, W), for image inputs whose height and width are symbolic
    channels: int | None = None  # for image inputs whose channel count is symbolic
    labels: tuple[str, ...] | None = None  # row names (default: distinct file stems)

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigError("give at least one ONNX model")
        if self.labels is not None and (len(self.labels) != len(self.models) or len(set(self.labels)) != len(self.labels)
                                        or not all(self.labels)):
            raise ConfigError(f"--labels needs {len(self.models)} distinct non-empty names, one per model, "
                              f"got {list(self.labels)}")
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


def distinct_labels(paths: list[Path]) -> list[str]:
    """File stems, prefixed with as many parent folders as make them distinct (``a/dom``, ``b/dom``)."""
    parts = [Path(p).resolve().with_suffix("").parts for p in paths]
    depth = [1] * len(paths)
    while True:
        labels = ["/".join(ps[-d:]) for ps, d in zip(parts, depth)]
        repeated = {label for label in labels if labels.count(label) > 1}
        if not repeated:
            return labels
        deeper = [i for i, label in enumerate(labels) if label in repeated and depth[i] < len(parts[i])]
        if not deeper:
            raise ConfigError(f"{paths[labels.index(next(iter(repeated)))]} is given twice")
        for i in deeper:
            depth[i] += 1


def describe_model(path: Path, label: str | None = None, image_size: tuple[int, int] | None = None,
                   channels: int | None = None) -> dict[str, Any]:
    """Cost, size and metadata of one ONNX file (no timing), at ``image_size`` / ``channels`` where its
    input leaves them symbolic."""
    proto = load_model(path)
    graph_input = model_input(proto, str(path))
    cost = onnx_cost(proto, image_size, where=str(path), channels=channels)
    meta = {p.key: p.value for p in proto.metadata_props}
    entry: dict[str, Any] = {
        "name": label or path.stem, "path": str(path), "file_bytes": path.stat().st_size,
        "input_name": graph_input.name, "input_dtype": np.dtype(graph_input.dtype).name,
        "fixed_batch": graph_input.fixed_batch,
        "mode": meta.get("wascompress.mode"), "seed": meta.get("wascompress.seed") or None,
        **cost.as_dict(),
    }
    entry["sparsity"] = 1 - cost.nonzero_params / cost.params if cost.params else 0.0
    if meta.get("wascompress.preprocessing"):
        entry["preprocessing"] = json.loads(meta["wascompress.preprocessing"])
    export = _export_report(path)
    if export is not None:
        entry["thop_macs"] = export["cost"]["macs"]
        entry["thop_match"] = export["cost"]["macs"] == cost.macs
    return entry


def onnx_accuracy(path: str | Path, data: Any, threads: int = 0, batch_size: int = 256) -> float:
    """Top-1 of an ONNX model on a data split (in memory or streamed) through ONNX Runtime (CPU)."""
    from wascompress.evaluate import count_correct
    from wascompress.profile.onnx_classifier import OnnxClassifier

    return count_correct(OnnxClassifier(path, threads=threads), data, batch_size).top1


def dataset_accuracy(path: Path, entry: dict[str, Any], request: ProfileRequest) -> float:
    """Top-1 of the model on the requested test split, its images at the model's input size."""
    from wascompress.data import limit, load_dataset
    from wascompress.data.normalization import with_stats

    shape = entry["input_shape"][1:]
    if len(shape) != 3 or shape[0] != 3:
        raise ConfigError(f"{entry['path']} takes input {entry['input_shape']}: --dataset needs models that take "
                          "RGB images (N, 3, H, W)")
    data = limit(load_dataset(request.dataset, request.data_dir, train=False, image_size=tuple(shape[1:])),
                 request.limit_test)
    if entry.get("preprocessing"):  # the normalisation the file records it was trained with
        data = with_stats(data, entry["preprocessing"]["mean"], entry["preprocessing"]["std"])
    return onnx_accuracy(path, data, request.plan.threads)


def profile(request: ProfileRequest) -> dict[str, Any]:
    """Profile every model; returns the report (models, latency per provider and batch, ratios)."""
    providers = resolve_providers(list(request.providers), request.skip_missing)
    paths = [Path(p) for p in request.models]
    labels = list(request.labels) if request.labels is not None else distinct_labels(paths)
    entries = [describe_model(p, label, request.image_size, request.channels) for p, label in zip(paths, labels)]
    shapes = {tuple(e["input_shape"][1:]) for e in entries}
    if len(shapes) > 1:
        listed = ", ".join(f"{e['name']} {e['input_shape'][1:]}" for e in entries)
        raise ConfigError(f"the models take different input shapes: {listed}")
    for entry in entries:
        fixed = entry["fixed_batch"]
        if fixed is not None and set(request.batch_sizes) != {fixed}:
            raise ConfigError(f"{entry['path']} fixes its batch size to {fixed}: use --batch-sizes {fixed}")
    per_image = entries[0]["input_shape"][1:]
    rng = np.random.default_rng(0)
    keys = [str(i) for i in range(len(entries))]  # labels may repeat; positions do not
    inputs = {}
    for batch in request.batch_sizes:
        x = rng.standard_normal((batch, *per_image), dtype=np.float32)
        inputs[batch] = {k: x.astype(e["input_dtype"]) for k, e in zip(keys, entries)}
    latency = []
    for short, provider in providers:
        (timed,) = time_rounds([{k: e["path"] for k, e in zip(keys, entries)}], inputs, request.plan, provider=provider,
                               input_names={k: e["input_name"] for k, e in zip(keys, entries)})
        for batch in request.batch_sizes:
            stats = [summarize(timed[batch].runs(k), batch) for k in keys]
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
    return {"reference": reference["name"], "input_shape": list(per_image), "models": entries, "latency": latency,
            "providers": [p for p, _ in providers], "batch_sizes": list(request.batch_sizes),
            "plan": {"warmup": request.plan.warmup, "runs": request.plan.runs, "budget_s": request.plan.budget_s,
                     "threads": request.plan.threads}}
