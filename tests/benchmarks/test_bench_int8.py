"""bench_int8's pieces on the tiny model: the four exports and the stem's share of time and MACs."""

from __future__ import annotations

import sys

import pytest

from tests.conftest import REPO
from wascompress.profile.onnx_cost import onnx_cost

sys.path.insert(0, str(REPO / "benchmarks"))
import bench_int8  # noqa: E402  (a broken import fails, not skips)


def test_stem_share_of_the_four_forms(tmp_path):
    paths = bench_int8.export_random("tiny", 1.0, 32, tmp_path, calibration_images=16)
    assert set(paths) == set(bench_int8.FORMS) and all(p.is_file() for p in paths.values())
    for form in ("aom_fp32", "dom_int8"):
        share = bench_int8.stem_share(paths[form], 32, batch=4, threads=1, runs=2)
        assert 0 < share["time_share"] < 1
        cost = onnx_cost(paths[form], (32, 32))
        assert share["mac_share"] == pytest.approx(next(n.macs for n in cost.nodes if n.op == "Conv") / cost.macs)
    # the DOM shrinks every conv but the stem, so the stem's part of the MACs grows
    assert (bench_int8.stem_share(paths["dom_int8"], 32, 4, 1, 1)["mac_share"]
            > bench_int8.stem_share(paths["aom_fp32"], 32, 4, 1, 1)["mac_share"])
