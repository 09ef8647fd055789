"""Does the profiler report what a bare ONNX Runtime loop measures? Its p50 against a hand-written loop.

One exported model (resnet18 at width 0.5, AOM) is timed two ways in the same run, alternating blocks of
runs: by ``wascompress.profile`` (its interleaved timing loop, one model) and by a bare
``session.run`` loop around ``time.perf_counter``. The headline is the ratio of the two medians;
the goal is to stay within 5 % (ratio between 0.95 and 1.05).

    python benchmarks/bench_profiler_overhead.py            # batch 8, 8 blocks of 40 runs (~1 min here)
    python benchmarks/bench_profiler_overhead.py --quick    # 4 blocks of 20 runs

Last line: ``profiler_over_bare_p50_ratio: X``.
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
from wascompress.profile.latency import TimingPlan, make_session  # noqa: E402
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
        session = make_session(path, "CPUExecutionProvider", 0)
        x = np.random.default_rng(0).standard_normal((args.batch, 3, 32, 32), dtype=np.float32)
        bare_loop(session, {"input": x}, 5)
        profiler_p50, bare_p50 = [], []
        for block in range(blocks):
            order = ("profiler", "bare") if block % 2 == 0 else ("bare", "profiler")
            for who in order:
                if who == "profiler":
                    report = profile(ProfileRequest(models=(path,), batch_sizes=(args.batch,),
                                                    plan=TimingPlan(warmup=2, runs=runs)))
                    profiler_p50.append(report["latency"][0]["p50_ms"])
                else:
                    bare_p50.append(statistics.median(bare_loop(session, {"input": x}, runs)) * 1e3)
    ratio = statistics.median(profiler_p50) / statistics.median(bare_p50)
    print(f"resnet18 width 0.5 AOM, batch {args.batch}: profiler p50 {statistics.median(profiler_p50):.3f} ms, "
          f"bare loop p50 {statistics.median(bare_p50):.3f} ms ({blocks} alternating blocks of {runs} runs)")
    write_json(args.json, {
            "benchmark": "profiler_overhead", "date": today(), "machine": machine(),
            "command": "python benchmarks/bench_profiler_overhead.py" + (" --quick" if args.quick else ""),
            "batch": args.batch, "blocks": blocks, "runs_per_block": runs,
            "profiler_p50_ms_blocks": profiler_p50, "bare_p50_ms_blocks": bare_p50,
            "profiler_p50_ms": statistics.median(profiler_p50), "bare_p50_ms": statistics.median(bare_p50),
            "ratio": ratio})
    print(f"profiler_over_bare_p50_ratio: {ratio:.4f}")


if __name__ == "__main__":
    main()
