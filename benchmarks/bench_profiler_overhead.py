"""Does the profiler report what a plain ONNX Runtime loop measures? Its p50 against hand-written loops.

One exported model (resnet18 at width 0.5, AOM) is timed three ways in the same run, alternating blocks
of runs: by ``wascompress.profile`` (its own sessions and interleaved timing loop, one model); by a bare
``session.run`` loop around ``time.perf_counter`` on a **default** ``onnxruntime.InferenceSession`` (what a
user who never heard of this toolkit would time); and by the same bare loop on a session with the
profiler's options (``make_session``: thread spinning stops after each run). The first ratio shows any
bias of the profiler, its session options included; the second its timing loop alone. Goal: the
profiler within 5 % of the default session (ratio between 0.95 and 1.05).

    python benchmarks/bench_profiler_overhead.py            # batch 8, 8 blocks of 40 runs (~1 min here)
    python benchmarks/bench_profiler_overhead.py --quick    # 4 blocks of 20 runs

Last line: ``profiler_over_default_session: X``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, today, write_json  # noqa: E402

from wascompress.export.exporter import ExportConfig, export_model  # noqa: E402
from wascompress.models import create_model  # noqa: E402
from wascompress.onnx_session import make_session  # noqa: E402
from wascompress.profile.latency import TimingPlan  # noqa: E402
from wascompress.profile.profiler import ProfileRequest, profile  # noqa: E402


def bare_loop(session, feeds: dict, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    blocks, runs = (4, 20) if args.quick else (8, 40)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        torch.manual_seed(0)
        export_model(create_model("resnet18", width=0.5), path, ExportConfig(mode="aom"))
        import onnxruntime as ort

        sessions = {"default": ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]),
                    "options": make_session(path, "CPUExecutionProvider", 0)}
        x = np.random.default_rng(0).standard_normal((args.batch, 3, 32, 32), dtype=np.float32)
        for session in sessions.values():
            bare_loop(session, {"input": x}, 5)
        p50: dict[str, list[float]] = {"profiler": [], "default": [], "options": []}
        for block in range(blocks):
            order = list(p50) if block % 2 == 0 else list(reversed(p50))
            for who in order:
                if who == "profiler":
                    report = profile(ProfileRequest(models=(path,), batch_sizes=(args.batch,),
                                                    plan=TimingPlan(warmup=2, runs=runs)))
                    p50[who].append(report["latency"][0]["p50_ms"])
                else:
                    p50[who].append(statistics.median(bare_loop(sessions[who], {"input": x}, runs)) * 1e3)
    median = {who: statistics.median(values) for who, values in p50.items()}
    over_default = median["profiler"] / median["default"]
    over_options = median["profiler"] / median["options"]
    print(f"resnet18 width 0.5 AOM, batch {args.batch} ({blocks} alternating blocks of {runs} runs): profiler p50 "
          f"{median['profiler']:.3f} ms, default session {median['default']:.3f} ms, session with the profiler's "
          f"options {median['options']:.3f} ms")
    print(f"profiler / same-options session: {over_options:.4f}")
    write_json(args.json, {
            "benchmark": "profiler_overhead", "date": today(), "machine": machine(),
            "command": "python benchmarks/bench_profiler_overhead.py" + (" --quick" if args.quick else ""),
            "batch": args.batch, "blocks": blocks, "runs_per_block": runs,
            "p50_ms_blocks": p50, "p50_ms": median,
            "profiler_over_default_session": over_default, "profiler_over_same_options_session": over_options})
    print(f"profiler_over_default_session: {over_default:.4f}")


if __name__ == "__main__":
    main()
