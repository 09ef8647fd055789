"""Profiling: MACs, sparsity, size and ONNX Runtime latency of an export against another.

The public API::

    from wascompress.profile import ProfileRequest, profile, onnx_cost, time_rounds

:func:`profile` measures a list of ONNX files side by side (the ``wascompress profile`` command);
:func:`onnx_cost` counts one graph's MACs, parameters and sparsity; :func:`time_rounds` times groups of
models interleaved in rounds of fresh sessions (what the profiler, the benchmarks and the study use).
"""

from __future__ import annotations

from wascompress.profile.latency import Rounds, TimingPlan, time_rounds
from wascompress.profile.onnx_cost import GraphCost, onnx_cost
from wascompress.profile.profiler import ProfileRequest, profile

__all__ = ["GraphCost", "ProfileRequest", "Rounds", "TimingPlan", "onnx_cost", "profile", "time_rounds"]
