"""The CIFAR-10 study runs end to end at its --quick size and writes a results file with every column."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO

WAS_COLUMNS = ("aom_test_acc", "dom_test_acc", "dom_val_acc", "aom_macs", "dom_macs", "aom_ms", "dom_ms",
               "latency_ratio")


def test_quick_study_writes_every_column(tmp_path, cifar_dir):
    out = tmp_path / "study"
    result = subprocess.run(
        [sys.executable, "benchmarks/study_cifar10.py", "--quick", "--out", str(out), "--data-dir", str(cifar_dir)],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "study_configs_done: 7"
    data = json.loads((out / "study_cifar10.json").read_text())
    rows = {row["config"]: row for row in data["table"]}
    assert set(rows) == {"baseline", "C-resize(0.8,1)", "C-zero(0.4,0.6)", "T(0.3)", "CT", "F(0.5,1)", "pruned-baseline"}
    for name, row in rows.items():
        assert row["aom_test_acc"]["n"] == 2 and 0 <= row["aom_test_acc"]["mean"] <= 1
        assert row["aom_macs"]["mean"] > 0
        if name not in ("baseline", "pruned-baseline"):
            for column in WAS_COLUMNS:
                assert row[column] is not None and row[column]["n"] == 2, (name, column)
    # crop-mode zero and translate give DOM models with fewer MACs; the resizing crop (no zeros) does not
    assert rows["C-zero(0.4,0.6)"]["dom_macs"]["mean"] < rows["C-zero(0.4,0.6)"]["aom_macs"]["mean"]
    assert rows["C-resize(0.8,1)"]["dom_macs"]["mean"] == rows["C-resize(0.8,1)"]["aom_macs"]["mean"]
    assert rows["pruned-baseline"]["aom_macs"]["mean"] < rows["baseline"]["aom_macs"]["mean"]
    assert (out / "study_cifar10.png").read_bytes()[:4] == b"\x89PNG"
    # a second invocation finds every unit done and only re-tabulates
    again = subprocess.run(
        [sys.executable, "benchmarks/study_cifar10.py", "--quick", "--out", str(out), "--data-dir", str(cifar_dir)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert again.returncode == 0 and json.loads((out / "study_cifar10.json").read_text())["table"] == data["table"]
