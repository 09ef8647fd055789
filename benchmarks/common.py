"""Shared helpers of the benchmark scripts: machine facts, interleaved timing, medians."""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import torch


def cpu_model() -> str:
    """The processor's name and its widest vector extensions (figures differ between the machines here)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown CPU"
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    vector = [f for f in ("avx512_vnni", "avx512f", "avx2") if f in flags][:1]
    return f"{name}{' (' + vector[0] + ')' if vector else ''}"


def machine() -> str:
    """One line naming the machine, for RESULTS.md."""
    return (
        f"{platform.machine()}, {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), Python {platform.python_version()}"
    )


def today() -> str:
    return datetime.date.today().isoformat()


def interleaved_times(
    runs: dict[str, Callable[[], object]], repeats: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Time each callable ``repeats`` times, interleaved A B, B A, A B ... so that drift and the position
    within a round hit every variant alike."""
    for _ in range(warmup):
        for fn in runs.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for round_ in range(repeats):
        for name in names if round_ % 2 == 0 else reversed(names):
            fn = runs[name]
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def write_json(path: Path | None, result: dict) -> None:
    """Write a benchmark's figures for render_results.py (nothing when ``path`` is None)."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
