"""The study's rows as data: rows.toml read once, with the lists the study and its renderer need and
the WAS configuration each row trains with."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from wascompress.was import WASConfig


BUDGET = 0.5
# The rows and their WAS configurations are data: rows.toml (its header says what each setting means).
SETTINGS = tomllib.loads((Path(__file__).resolve().parent / "rows.toml").read_text())
ROW_SETTINGS: dict[str, dict[str, Any]] = SETTINGS["rows"]
ROWS = tuple(ROW_SETTINGS)  # in the table's order
EXTRA_ROWS = tuple(row for row, s in ROW_SETTINGS.items() if s.get("extra"))  # run when named
DEFAULT_ROWS = tuple(row for row in ROWS if row not in EXTRA_ROWS)
PRETRAINED_ROWS = tuple(row for row, s in ROW_SETTINGS.items() if s["kind"] in ("pretrained", "torch-pruning-multi",
                                                                                         "plan"))
RECIPE_ROW = "sandwich-pair"  # the trainer's default beside a fixed DOM: the wall time the competitor is given
DOM_ROWS = tuple(row for row, s in ROW_SETTINGS.items() if s.get("dom"))
CONTROLS = {row: s["control"] for row, s in ROW_SETTINGS.items() if "control" in s}  # default: scratch
COMPETITORS = {row: s["competitor"] for row, s in ROW_SETTINGS.items() if "competitor" in s}  # default: torch-pruning
PRUNING_TARGETS = {row: s["prune_to"] for row, s in ROW_SETTINGS.items() if "prune_to" in s}  # default: sandwich


def named_was(name: str, model: str) -> WASConfig:
    """The WAS configuration ``name`` of rows.toml, for ``model`` where it has one per network."""
    table = SETTINGS["was"][name]
    if all(isinstance(value, dict) for value in table.values()):  # one per network
        if model not in table:
            raise SystemExit(f"error: the {name} WAS configuration has no entry for {model} (it has: {', '.join(table)})")
        table = table[model]
    return WASConfig.from_dict(table)


CROP = named_was("crop", "")


def row_was(row: str, model: str) -> WASConfig:
    """The WAS configuration a row trains (and builds its DOM) with."""
    return named_was(ROW_SETTINGS[row]["was"], model)


def default_seeds(model: str, quick: bool = False) -> list[int]:
    """The seeds the study runs for ``model`` unless told: two for vgg16 (and at --quick), one for resnet18."""
    return [0, 1] if model == "vgg16" or quick else [0]
