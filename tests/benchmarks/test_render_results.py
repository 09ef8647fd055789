"""The results renderer's DOM-study plot: one marker per row, with or without measured latency."""

from __future__ import annotations

import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
render_results = pytest.importorskip("render_results")


def stat(mean: float, std: float = 0.0, n: int = 1) -> dict[str, float]:
    return {"mean": mean, "std": std, "n": n}


def test_study_plot_is_a_png_with_and_without_latency():
    pytest.importorskip("matplotlib")
    table = [
        {"model": "vgg16", "row": "baseline", "test_top1": stat(0.84, 0.004, 2), "mac_ratio": 1.0,
         "latency_ratio_b32": None},
        {"model": "vgg16", "row": "sandwich", "test_top1": stat(0.82, 0.003, 2), "mac_ratio": 0.457,
         "latency_ratio_b32": stat(0.52, 0.01, 2)},
        {"model": "resnet18", "row": "scratch", "test_top1": stat(0.8), "mac_ratio": 0.46, "latency_ratio_b32": None},
    ]
    for rows in (table, [dict(r, latency_ratio_b32=None) for r in table]):
        png = render_results.study_dom_plot(rows)
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
