"""The benchmarks' results renderer: tables computed from a benchmark's JSON."""

from __future__ import annotations

import sys

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import render_results  # noqa: E402  (a broken import fails, not skips)


def test_int8_table_gives_the_speed_up_without_the_stem():
    row = {"model": "tv_resnet18", "size": 224, "width": 1.0, "batch": 32, "aom_fp32_ms": 600.0,
           "stem": {"aom_fp32": {"time_share": 0.1, "mac_share": 0.07},
                    "dom_int8": {"time_share": 0.25, "mac_share": 0.13}}}
    for form, ms in (("aom_int8", 300.0), ("dom_fp32", 300.0), ("dom_int8", 180.0)):
        row.update({f"{form}_ms": ms, f"{form}_speedup": 600.0 / ms})
    result = {"was": {"crop": [0.4, 0.6]}, "quantize": {"calibration": "minmax", "reduce_range": True},
              "threads": 2, "rounds": 5, "speedup_goal": 4.0, "batches": [1, 32], "accuracy_goal_points": 1.0,
              "command": "python benchmarks/bench_int8.py", "machine": "m", "date": "d", "rows": [row],
              "accuracy": [], "dom_int8_speedup_vs_aom_fp32": 600.0 / 180.0}
    table = "\n".join(render_results.int8(result))
    assert "| tv_resnet18 | 10.0 % / 7.0 % | 25.0 % / 13.0 % | 4.00x |" in table  # 540 ms / 135 ms


def test_every_renderer_has_its_json_and_none_renders_the_study():
    assert set(render_results.RENDERERS) == {p.stem for p in (REPO / "benchmarks" / "results").glob("*.json")}
    assert not any("study" in name for name in render_results.RENDERERS)
