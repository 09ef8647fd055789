"""Latency measurement (``wascompress/profile/latency.py``): providers by short name, timing plans, models
timed interleaved in alternating order, and the percentiles of the runs."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from wascompress.errors import ConfigError, WascompressError
from wascompress.profile import latency
from wascompress.profile.latency import (PROVIDERS, ProviderMissingError, TimingPlan, resolve_providers, summarize,
                                         time_interleaved)


class Session:
    """Stands for an ONNX Runtime session: records its runs in a log shared by all."""

    def __init__(self, name: str, log: list[tuple[str, dict]]) -> None:
        self.name, self.log = name, log

    def run(self, outputs, feed: dict) -> list:
        self.log.append((self.name, feed))
        return []


def sessions(*names: str) -> tuple[list[Session], list[tuple[str, dict]]]:
    log: list[tuple[str, dict]] = []
    return [Session(n, log) for n in names], log


# ---------------------------------------------------------------------------------------------------
# Providers and plans


def test_providers_by_short_name():
    assert resolve_providers(["cpu"], skip_missing=False) == [("cpu", "CPUExecutionProvider")]
    assert resolve_providers([" CPU "], skip_missing=False) == [("cpu", "CPUExecutionProvider")]
    with pytest.raises(ConfigError, match="unknown execution provider 'gpu'; choose from: cpu, cuda, tensorrt"):
        resolve_providers(["gpu"], skip_missing=True)
    assert set(PROVIDERS) >= {"cpu", "cuda", "tensorrt", "openvino"}


def test_a_missing_provider_is_an_error_unless_skipped(monkeypatch):
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(ProviderMissingError, match="execution provider tensorrt .* --skip-missing") as caught:
        resolve_providers(["cpu", "tensorrt"], skip_missing=False)
    assert isinstance(caught.value, WascompressError) and "\n" not in str(caught.value)  # one line, exit 2
    assert resolve_providers(["cpu", "tensorrt"], skip_missing=True) == [("cpu", "CPUExecutionProvider")]
    with pytest.raises(ProviderMissingError, match="none of the requested execution providers is available"):
        resolve_providers(["cuda", "tensorrt"], skip_missing=True)


def test_timing_plans():
    assert TimingPlan().runs == 30 and TimingPlan(runs=None, budget_s=0.1).budget_s == 0.1
    for bad, fragment in [(dict(runs=None), "either a number of runs or a time budget"),
                          (dict(runs=5, budget_s=1.0), "either a number of runs or a time budget"),
                          (dict(runs=0), "runs must be >= 1"),
                          (dict(runs=None, budget_s=0), "time budget must be > 0 s"),
                          (dict(warmup=-1), "warm-up runs and threads must be >= 0"),
                          (dict(threads=-2), "warm-up runs and threads must be >= 0")]:
        with pytest.raises(ConfigError, match=fragment):
            TimingPlan(**bad)


# ---------------------------------------------------------------------------------------------------
# Timing


def test_models_are_timed_interleaved_in_alternating_order_after_their_warm_up():
    (a, b, c), log = sessions("a", "b", "c")
    batch = np.zeros((2, 3, 8, 8), np.float32)
    times = time_interleaved([a, b, c], "input", batch, TimingPlan(warmup=2, runs=3))
    order = [name for name, _ in log]
    assert order[:6] == ["a", "a", "b", "b", "c", "c"]  # warm-up, not timed
    assert order[6:] == ["a", "b", "c", "c", "b", "a", "a", "b", "c"]  # A B C, C B A, A B C
    assert [len(t) for t in times] == [3, 3, 3] and all(s >= 0 for t in times for s in t)
    assert all(feed["input"] is batch for _, feed in log)


def test_each_model_may_have_its_own_input_name_and_batch():
    (a, b), log = sessions("a", "b")
    x, y = np.zeros((1, 3, 8, 8), np.float32), np.zeros((1, 3, 8, 8), np.float16)
    time_interleaved([a, b], ["images", "x"], [x, y], TimingPlan(warmup=0, runs=1))
    assert log == [("a", {"images": x}), ("b", {"x": y})]


def test_a_time_budget_bounds_each_model(monkeypatch):
    ticks = iter(range(10**6))  # every run takes 10 ms of a fake clock
    monkeypatch.setattr(latency, "time", SimpleNamespace(perf_counter=lambda: next(ticks) * 0.01))
    (a, b), log = sessions("a", "b")
    plan = TimingPlan(warmup=1, runs=None, budget_s=0.045)
    times = time_interleaved([a, b], "input", np.zeros(1, np.float32), plan)
    assert [len(t) for t in times] == [5, 5]  # until each has spent 45 ms: 5 runs
    assert times[0] == pytest.approx([0.01] * 5) and len(log) == 2 + 10


def test_summary_percentiles_and_throughput():
    runs = [0.001 * k for k in range(1, 101)]  # 1 .. 100 ms
    summary = summarize(runs, batch=8)
    assert summary["runs"] == 100 and summary["mean_ms"] == pytest.approx(50.5)
    assert summary["p50_ms"] == pytest.approx(50.5) and summary["p90_ms"] == pytest.approx(90.1)
    assert summary["p99_ms"] == pytest.approx(99.01)
    assert summary["throughput_ips"] == pytest.approx(8 / 0.0505)  # images per second at the median


# ---------------------------------------------------------------------------------------------------
# Rounds of fresh sessions (the profiler's, the benchmarks' and the DOM study's timing)


def test_rounds_give_medians_their_ratios_and_the_median_round():
    rounds = latency.Rounds([{"a": [1.0, 3.0, 2.0], "b": [1.0, 1.0, 1.0]},  # medians a 2, b 1: ratio 2
                             {"a": [4.0, 4.0, 4.0], "b": [1.0, 1.0, 1.0]},  # ratio 4
                             {"a": [3.0, 3.0, 3.0], "b": [2.0, 2.0, 2.0]}])  # ratio 1.5
    assert rounds.medians("a") == [2.0, 4.0, 3.0] and rounds.median("a") == 3.0
    assert rounds.ratios("a", "b") == [2.0, 4.0, 1.5] and rounds.median_ratio("a", "b") == 2.0
    assert rounds.median_round("a", "b") == 0  # the round whose ratio is the median
    assert latency.Rounds(rounds.times[:2]).median_round("a", "b") == 1  # even count: the upper one
    assert sorted(rounds.runs("b")) == [1.0] * 6 + [2.0] * 3


def test_each_round_opens_fresh_sessions_for_every_group_before_the_next_round(monkeypatch):
    log: list[tuple[str, dict]] = []
    opened: list[tuple[str, int]] = []

    def make_session(path, provider, threads):
        opened.append((str(path), threads))
        return Session(str(path), log)

    monkeypatch.setattr(latency, "make_session", make_session)
    x1, x8 = np.zeros((1, 3)), np.zeros((8, 3))
    plans = {1: TimingPlan(warmup=0, runs=2, threads=2), 8: TimingPlan(warmup=0, runs=1, threads=2)}
    timed = latency.time_rounds([{"a": "a.onnx", "b": "b.onnx"}, {"c": "c.onnx"}], {1: x1, 8: x8}, plans, rounds=2)
    assert opened == [("a.onnx", 2), ("b.onnx", 2), ("c.onnx", 2)] * 2
    assert [name for name, _ in log] == (["a.onnx", "b.onnx", "b.onnx", "a.onnx", "a.onnx", "b.onnx", "c.onnx",
                                          "c.onnx", "c.onnx"] * 2)
    assert [len(timed[0][1].times), len(timed[0][1].runs("a")), len(timed[0][8].runs("a")), len(timed[1][1].runs("c"))] \
        == [2, 4, 2, 4]
    with pytest.raises(ConfigError, match="same threads"):
        latency.time_rounds([{"a": "a.onnx"}], {1: x1, 8: x8}, {1: TimingPlan(threads=1), 8: TimingPlan(threads=2)})
