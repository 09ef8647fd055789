"""``wascompress evaluate`` through the command line: a grid, reproducible numbers, clear errors."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli
from wascompress.train.config import TrainConfig
from wascompress.train.trainer import train
from wascompress.was import WASConfig


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    run = tmp_path_factory.mktemp("evaluate") / "run"
    train(TrainConfig(model="tiny", dataset="synthetic", epochs=1, lr=0.05, batch_size=64, bn_batches=2,
                      limit_train=600, was=WASConfig(crop=(0.4, 0.6), translate=0.3)), run)
    return run / "best.pt"


def test_grid_is_reproducible(checkpoint, tmp_path):
    args = ["evaluate", str(checkpoint), "--mode", "aom", "dom", "--seed", "0", "1", "--shift", "rotate:0:30",
            "--shift", "translate:0.1", "--limit-test", "200"]
    first = run_cli(*args, "--json", str(tmp_path / "a.json"), "--plot", str(tmp_path / "a.png"))
    assert first.returncode == 0, first.stderr
    second = run_cli(*args, "--json", str(tmp_path / "b.json"))
    assert second.returncode == 0, second.stderr
    rows_a = json.loads((tmp_path / "a.json").read_text())["rows"]
    rows_b = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert rows_a == rows_b and len(rows_a) == 3 * 3  # (aom, dom 0, dom 1) x (clean + 2 shifts)
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    for row in rows_a:
        clean = next(r for r in rows_a if (r["mode"], r["seed"], r["shift"]) == (row["mode"], row["seed"], "none"))
        assert row["drop_points"] == pytest.approx((clean["accuracy"] - row["accuracy"]) * 100)


@pytest.mark.parametrize("extra,fragment", [(["--shift", "shear:1"], "shear"), (["--seed", "-2", "--mode", "dom"], "-2")])
def test_bad_input(checkpoint, extra, fragment):
    result = run_cli("evaluate", str(checkpoint), *extra)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert fragment in result.stderr.strip().splitlines()[-1]
