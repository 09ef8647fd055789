"""Latency of ONNX models on ONNX Runtime execution providers, measured so that models can be compared.

Models are timed interleaved (A B C, C B A, A B C ...) within each provider and batch size, so drift of
a shared machine hits every model alike; percentiles come from the individual runs. Either a fixed
number of runs or a time budget per model bounds the measurement. :func:`time_rounds` repeats that in
rounds of fresh sessions (the profiler, the benchmarks and the DOM study all time this way): a slow
phase of the machine or an unlucky memory layout then moves one round, not the median.
"""

from __future__ import annotations

import time
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wascompress.errors import ConfigError, WascompressError
from wascompress.onnx_session import CPU, make_session

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


Feed = np.ndarray | Mapping[str, np.ndarray]  # one batch for every model, or one per model name


@dataclass(frozen=True)
class Rounds:
    """Per-run seconds of models timed interleaved in rounds: ``times[round][model]``."""

    times: list[dict[str, list[float]]]

    def medians(self, model: str) -> list[float]:
        """``model``'s median seconds in each round."""
        return [statistics.median(r[model]) for r in self.times]

    def median(self, model: str) -> float:
        """The median over rounds of ``model``'s median seconds."""
        return statistics.median(self.medians(model))

    def ratios(self, model: str, reference: str) -> list[float]:
        """Each round's ratio of medians, ``model`` over ``reference``."""
        return [a / b for a, b in zip(self.medians(model), self.medians(reference))]

    def median_ratio(self, model: str, reference: str) -> float:
        """The median over rounds of :meth:`ratios`."""
        return statistics.median(self.ratios(model, reference))

    def median_round(self, model: str, reference: str) -> int:
        """The round whose ratio is the median (the upper one for an even count): every figure of a row
        can then come from one statistic."""
        ratios = self.ratios(model, reference)
        return sorted(range(len(ratios)), key=ratios.__getitem__)[len(ratios) // 2]

    def runs(self, model: str) -> list[float]:
        """Every run of ``model``, all rounds together (for percentiles)."""
        return [t for r in self.times for t in r[model]]


def time_rounds(groups: Sequence[Mapping[str, str | Path]], inputs: Mapping[int, Feed],
                plan: TimingPlan | Mapping[int, TimingPlan], rounds: int = 1, provider: str = CPU,
                input_names: str | Mapping[str, str] = "input") -> list[dict[int, Rounds]]:
    """Time each group of ONNX files (model name -> file) interleaved among itself, at each batch size of
    ``inputs`` (batch -> the input array, or one per model name), in ``rounds`` rounds: each round opens
    fresh sessions for every group and times every group at every batch before the next round starts.
    ``plan``: one for every batch size or one per batch size (their threads must agree). Returns per
    group: batch -> :class:`Rounds`."""
    plans = dict(plan) if isinstance(plan, Mapping) else {batch: plan for batch in inputs}
    threads = {p.threads for p in plans.values()}
    if len(threads) != 1:
        raise ConfigError(f"the timing plans of one measurement must use the same threads, got {sorted(threads)}")
    measured: list[dict[int, list[dict[str, list[float]]]]] = [{batch: [] for batch in inputs} for _ in groups]
    for _ in range(rounds):
        for group, into in zip(groups, measured):
            names = list(group)
            sessions = [make_session(group[name], provider, next(iter(threads))) for name in names]
            feed_names = [input_names if isinstance(input_names, str) else input_names[n] for n in names]
            for batch, feed in inputs.items():
                arrays = [feed if isinstance(feed, np.ndarray) else feed[n] for n in names]
                times = time_interleaved(sessions, feed_names, arrays, plans[batch])
                into[batch].append(dict(zip(names, times)))
            del sessions
    return [{batch: Rounds(per_round) for batch, per_round in group.items()} for group in measured]
