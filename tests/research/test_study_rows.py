"""The DOM study's rows are data (research/dom_study/rows.toml): every setting names something that exists."""

from __future__ import annotations

import sys

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "research" / "dom_study"))
import study_rows  # noqa: E402  (a broken import fails, not skips)

KINDS = {"baseline", "paper", "sandwich", "sandwich-ft", "scratch", "thin", "torch-pruning", "torch-pruning-walltime",
         "pretrained", "torch-pruning-multi", "plan"}


def test_every_row_names_a_known_kind_and_existing_rows():
    for row, settings in study_rows.ROW_SETTINGS.items():
        assert settings["kind"] in KINDS, row
        for key in ("control", "competitor", "prune_to", "dense_row"):
            assert settings.get(key, "baseline") in study_rows.ROWS, (row, key)
    assert set(study_rows.DOM_ROWS) <= {r for r, s in study_rows.ROW_SETTINGS.items() if s["kind"] in ("paper", "sandwich", "sandwich-ft")}
    assert "baseline" in study_rows.DEFAULT_ROWS and "sandwich-pair-mixed" in study_rows.EXTRA_ROWS


def test_every_row_with_was_builds_it_for_each_network_it_runs_on():
    for row, settings in study_rows.ROW_SETTINGS.items():
        if "was" not in settings:
            assert settings["kind"] in ("baseline", "thin", "plan") or settings["kind"].startswith("torch-pruning"), row
            continue
        models = ("resnet18", "tiny") if settings["was"] == "mixed" else ("resnet18", "vgg16", "tiny")
        for model in models:
            assert study_rows.row_was(row, model).crop is not None, (row, model)
    assert study_rows.row_was("paper-ct", "vgg16").translate == 0.3
    assert study_rows.row_was("sandwich-pair-aligned", "vgg16").dom_align
    assert study_rows.row_was("sandwich", "vgg16") == study_rows.CROP
