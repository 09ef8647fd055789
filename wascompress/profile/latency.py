"""Latency of ONNX models on ONNX Runtime execution providers, measured so that models can be compared.

Models are timed interleaved (A B C, C B A, A B C ...) within each provider and batch size, so drift of
a shared machine hits every model alike; percentiles come from the individual runs. Either a fixed
number of runs or a time budget per model bounds the measurement.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wascompress.errors import ConfigError, WascompressError

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider",
             "openvino": "OpenVINOExecutionProvider", "dml": "DmlExecutionProvider", "coreml": "CoreMLExecutionProvider"}


class ProviderMissingError(WascompressError):
    """A requested execution provider is not available in this ONNX Runtime build."""


def resolve_providers(names: list[str], skip_missing: bool) -> list[tuple[str, str]]:
    """Short names -> (short name, ORT provider name); a missing one is an error unless ``skip_missing``."""
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    resolved = []
    for name in names:
        key = name.strip().lower()
        if key not in PROVIDERS:
            raise ConfigError(f"unknown execution provider {name!r}; choose from: {', '.join(PROVIDERS)}")
        if PROVIDERS[key] not in available:
            if skip_missing:
                continue
            raise ProviderMissingError(f"execution provider {key} ({PROVIDERS[key]}) is not available in this "
                                       f"onnxruntime build (available: {', '.join(sorted(available))}); "
                                       "pass --skip-missing to profile the others")
        resolved.append((key, PROVIDERS[key]))
    if not resolved:
        raise ProviderMissingError("none of the requested execution providers is available")
    return resolved


@dataclass(frozen=True)
class TimingPlan:
    """How long to measure each model: ``runs`` timed runs, or until ``budget_s`` seconds per model."""

    warmup: int = 3
    runs: int | None = 30
    budget_s: float | None = None
    threads: int = 0  # intra-op threads; 0: ONNX Runtime's default

    def __post_init__(self) -> None:
        if (self.runs is None) == (self.budget_s is None):
            raise ConfigError("give either a number of runs or a time budget")
        if self.runs is not None and self.runs < 1:
            raise ConfigError(f"runs must be >= 1, got {self.runs}")
        if self.budget_s is not None and not self.budget_s > 0:
            raise ConfigError(f"time budget must be > 0 s, got {self.budget_s}")
        if self.warmup < 0 or self.threads < 0:
            raise ConfigError("warm-up runs and threads must be >= 0")


def make_session(path: str | Path, provider: str, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    # Sessions timed in turn must not compete: an idle session's threads would otherwise spin on the
    # cores during the next session's run (2x noise). Stop spinning when a run returns, but keep it
    # within a run, as a deployed session does: without it every op pays a thread wake-up, which
    # made a many-small-op resnet18 DOM export look 15 % slower at batch 1 than it runs.
    options.add_session_config_entry("session.force_spinning_stop", "1")
    return ort.InferenceSession(str(path), options, providers=[provider])


def summarize(times_s: list[float], batch: int) -> dict[str, float]:
    ms = np.asarray(times_s) * 1e3
    p50 = float(np.percentile(ms, 50))
    return {"runs": len(times_s), "p50_ms": p50, "p90_ms": float(np.percentile(ms, 90)),
            "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean()),
            "throughput_ips": batch / (p50 / 1e3)}


def time_interleaved(sessions: list[Any], feed_name: str | Sequence[str], batch: np.ndarray | Sequence[np.ndarray],
                     plan: TimingPlan) -> list[list[float]]:
    """Per-run seconds for each session, runs interleaved with alternating order. ``feed_name`` and
    ``batch`` are the same for every session, or one per session (models whose inputs differ in name
    or element type)."""
    names = [feed_name] * len(sessions) if isinstance(feed_name, str) else list(feed_name)
    batches = [batch] * len(sessions) if isinstance(batch, np.ndarray) else list(batch)
    feeds = [{name: data} for name, data in zip(names, batches)]
    for session, feed in zip(sessions, feeds):
        for _ in range(plan.warmup):
            session.run(None, feed)
    times: list[list[float]] = [[] for _ in sessions]
    spent = [0.0] * len(sessions)
    order = list(range(len(sessions)))
    round_ = 0
    while True:
        if plan.runs is not None and round_ >= plan.runs:
            break
        if plan.budget_s is not None and min(spent) >= plan.budget_s and round_ > 0:
            break
        for i in order if round_ % 2 == 0 else reversed(order):
            start = time.perf_counter()
            sessions[i].run(None, feeds[i])
            elapsed = time.perf_counter() - start
            times[i].append(elapsed)
            spent[i] += elapsed
        round_ += 1
    return times
