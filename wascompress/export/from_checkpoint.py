"""Exporting straight from a training checkpoint: data for BatchNorm re-estimation and INT8 calibration,
DOM seed search.

The input shape, data set, split and calibration batches (their count, size and seed) are those the
trainer used (read from the checkpoint's recorded configuration; ``data_dir`` overrides where the files
are, ``image_size`` the image size), so a DOM export at the trainer's evaluation seed has the
statistics the trainer measured it with. An INT8 export calibrates on training images drawn in the same
order and checks its agreement with FP32 on the validation split, its accuracy on the test split.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from wascompress.checkpoint import Checkpoint, file_sha256, load_checkpoint
from wascompress.data import geometry
from wascompress.data.normalization import preprocessing_record, stats_source
from wascompress.data.run_data import (
    Splits,
    checkpoint_calibration,
    checkpoint_calibration_images,
    checkpoint_splits,
    data_settings,
)
from wascompress.errors import ConfigError, DataError
from wascompress.evaluate import mode_accuracy
from wascompress.export.budget import check_budget, seed_costs, within_budget
from wascompress.export.exporter import ExportConfig, check_output, export_model
from wascompress.export.quantize import QuantizationData
from wascompress.fileio import atomic_write_text
from wascompress.models.registry import model_normalization
from wascompress.was import has_was

log = logging.getLogger(__name__)

OBJECTIVES = ("accuracy", "macs")


@dataclass(frozen=True)
class SeedSearch:
    """Evaluate DOM seeds 0..count-1 on the validation split and pick one."""

    count: int
    objective: str = "accuracy"  # "accuracy": best validation accuracy; "macs": fewest pruned MACs ...
    max_drop: float = 1.0  # ... among seeds within this many points of AOM validation accuracy
    target_macs: float | None = None  # only seeds whose pruned graph is at or under this fraction of AOM's

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ConfigError(f"--search-seeds must be a positive integer, got {self.count!r}")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if not self.max_drop >= 0:
            raise ConfigError(f"--max-drop must be >= 0 percentage points, got {self.max_drop!r}")
        if self.target_macs is not None:
            check_budget(self.target_macs)


def trained_dom_seed(checkpoint: Checkpoint) -> int | None:
    """The DOM seed a checkpoint was trained to deploy (``--dom-seed`` / ``--target-macs``; the first
    of several), or None."""
    seeds = checkpoint.dom_seeds
    return seeds[0] if seeds else None


def serving_budget(doms: list[dict[str, Any]], ratio: float) -> tuple[list[dict[str, Any]], bool]:
    """Of the DOMs held for MAC budgets, those serving ``ratio``: the one for that budget, else every one at or
    under it; and whether the first was found."""
    exact = [d for d in doms if abs(d["target"] - ratio) < 1e-9]
    return exact or [d for d in doms if d["ratio"] <= ratio + 1e-12], bool(exact)


def trained_dom_for_budget(checkpoint: Checkpoint, ratio: float, source: str | Path = "the checkpoint"
                           ) -> dict[str, Any] | None:
    """The DOM a run trained for a MAC budget (``--target-macs``) that fits ``ratio``: the one trained
    for that budget, else the largest trained one at or under it. None when the run trained no budget;
    a one-line error (naming ``source``) when it did but none fits."""
    check_budget(ratio)
    trained = checkpoint.trained_doms()
    if not trained:
        return None
    fitting, _ = serving_budget(trained, ratio)
    if not fitting:
        listed = ", ".join(f"{d['target']:g} (seed {d['seed']}, {d['ratio']:.3f})" for d in trained)
        raise ConfigError(f"{source} trained no DOM at or under {ratio:g} of the AOM's MACs (its budgets: "
                          f"{listed}); pass --search-seeds K to search untrained seeds")
    return max(fitting, key=lambda d: (d["ratio"], -d["seed"]))


def planned_dom_for_budget(checkpoint: Checkpoint, ratio: float, source: str | Path = "the checkpoint"
                           ) -> dict[str, Any] | None:
    """The planned DOM a checkpoint holds for a MAC budget (``wascompress fit --plan``) that fits ``ratio``:
    the one planned for it, else the largest planned at or under it; None when it holds no plan; a one-line
    error when it does but none fits."""
    check_budget(ratio)
    planned = checkpoint.planned_doms()
    if not planned:
        return None
    fitting, exact = serving_budget(planned, ratio)
    if not fitting:
        listed = ", ".join(f"{d['target']:g} ({d['ratio']:.3f})" for d in planned)
        raise ConfigError(f"{source} holds no planned DOM at or under {ratio:g} of the MACs (its budgets: {listed})")
    return {**max(fitting, key=lambda d: d["ratio"]), "exact": exact}


def planned_budget_record(requested: float, planned: dict[str, Any]) -> dict[str, Any]:
    """What an export of a planned DOM for MAC budget ``requested`` records."""
    return {"requested": requested, "trained_for": planned["target"], "plan": planned["key"],
            "mac_ratio": planned["ratio"], "trained": planned["exact"],
            "note": "the DOM planned and fitted for this budget" if planned["exact"] else
            f"no DOM was planned for {requested:g}: this is the one planned for {planned['target']:g}"}


def budget_record(requested: float, trained: dict[str, Any] | None) -> dict[str, Any]:
    """What an export for MAC budget ``requested`` records: the trained DOM serving it (``trained``, from
    :func:`trained_dom_for_budget`) and whether the run trained that budget itself, or that none was trained."""
    if trained is None:
        return {"requested": requested, "trained_for": None,
                "note": "the run trained no DOM for a MAC budget: the seed was searched on the validation split"}
    exact = abs(trained["target"] - requested) < 1e-9
    return {"requested": requested, "trained_for": trained["target"], "seed": trained["seed"],
            "mac_ratio": trained["ratio"], "trained": exact,
            "note": "the DOM the run trained for this budget" if exact else
            f"the run trained no DOM for {requested:g}: this is the one trained for {trained['target']:g}, "
            "the largest at or under it"}


def search_seeds(model: torch.nn.Module, splits: Splits, calibration: list[torch.Tensor], search: SeedSearch,
                 input_shape: tuple[int, int, int]) -> tuple[int, list[dict[str, Any]]]:
    """Evaluate every seed; return the chosen seed and the table (one row per seed).

    Each seed's MACs are those of the pruned graph it exports to. Works on a copy: the BatchNorm
    statistics each evaluation re-estimates stay out of ``model``."""
    model = copy.deepcopy(model)
    costs = {c.seed: c for c in seed_costs(model, range(search.count), input_shape)}
    if search.target_macs is not None:
        within_budget(list(costs.values()), search.target_macs)  # one clear line when no seed reaches it
    aom = mode_accuracy(model, splits.val, mode="aom", calibration=calibration).top1
    rows = []
    for seed in range(search.count):
        cost = costs[seed]
        inside = search.target_macs is None or cost.ratio <= search.target_macs + 1e-12
        accuracy = (mode_accuracy(model, splits.val, mode="dom", seed=seed, calibration=calibration).top1
                    if inside else None)
        rows.append({"seed": seed, "val_acc": accuracy, "val_acc_aom": aom, "pruned_macs": cost.macs,
                     "mac_ratio": cost.ratio, "within_budget": inside,
                     "drop_points": (aom - accuracy) * 100 if accuracy is not None else None})
    candidates = [r for r in rows if r["within_budget"]]
    if search.objective == "accuracy":
        best = max(candidates, key=lambda r: (r["val_acc"], -r["pruned_macs"], -r["seed"]))
    else:
        allowed = [r for r in candidates if r["drop_points"] <= search.max_drop]
        if not allowed:
            raise ConfigError(f"no seed of {search.count} stays within {search.max_drop:g} points of AOM "
                              f"validation accuracy ({aom * 100:.2f}%); raise --max-drop or --search-seeds")
        best = min(allowed, key=lambda r: (r["pruned_macs"], -r["val_acc"], r["seed"]))
    for row in rows:
        row["chosen"] = row is best
    return best["seed"], rows


def export_checkpoint(
    checkpoint_path: str | Path,
    out: str | Path,
    config: ExportConfig,
    *,
    data_dir: str | None = None,
    bn_batches: int | None = None,
    search: SeedSearch | None = None,
    overwrite: bool = False,
    image_size: tuple[int, int] | None = None,
    loaded: Checkpoint | None = None,
    source: dict[str, Any] | None = None,
    budget: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Export a checkpoint in AOM or DOM: ``config.seed``, or with ``search`` the seed it picks.

    The model is exported, verified and counted at the image size its run trained at, or at ``image_size``
    (H, W) if given, with the checkpoint's channel count; ``config.input_shape`` is not used. ``loaded``:
    the file's contents when the caller has read it already (``checkpoint_path`` still names the source);
    ``source``: what the file's metadata records about its source instead of :func:`provenance`; ``budget``:
    the MAC budget asked for and what serves it (:func:`budget_record`), recorded in the metadata and report."""
    out = Path(out)
    check_output(out, overwrite)
    if bn_batches is not None and (isinstance(bn_batches, bool) or bn_batches < 1):
        raise ConfigError(f"--bn-batches must be a positive integer, got {bn_batches!r}")
    checkpoint = loaded if loaded is not None else load_checkpoint(checkpoint_path)
    trained = checkpoint.input_shape
    shape = trained if image_size is None else (trained[0], *geometry.image_size(image_size))
    config = replace(config, input_shape=shape)
    model = checkpoint.build_model()
    if (config.mode == "dom" or search is not None) and not has_was(model):
        raise ConfigError(f"{checkpoint_path} was trained without WAS: it has no DOM (export --mode aom)")
    splits = export_splits(checkpoint, config, data_dir, search)
    calibration = checkpoint_calibration(checkpoint, splits, bn_batches) if splits else None
    table = None
    if search is not None:
        seed, table = search_seeds(model, splits, calibration, search, config.input_shape)
        config = replace(config, mode="dom", seed=seed)
    quantization = None
    if config.quantize is not None:
        quantization = QuantizationData(
            checkpoint_calibration_images(checkpoint, splits, config.quantize.calibration_images), splits.val,
            splits.test)
    report = export_model(model, out, config, calibration=calibration,
                          images=first_val_batch(splits) if splits else None, overwrite=overwrite,
                          metadata={**(source if source is not None else provenance(checkpoint_path, checkpoint)),
                                    **({"budget": budget} if budget is not None else {})},
                          quantization=quantization)
    if table is not None:
        write_seed_search(report, search, table, out)
    return report


def export_splits(checkpoint: Checkpoint, config: ExportConfig, data_dir: str | None,
                  search: SeedSearch | None) -> Splits | None:
    """The run's splits at the export's image size, or None when its data is not there and the export can
    do without (an AOM export then verifies on random inputs only); else a one-line :class:`DataError`."""
    try:
        return checkpoint_splits(checkpoint, data_dir, image_size=config.input_shape[1:])
    except DataError as err:
        if config.quantize is not None:
            raise DataError(f"{err} (--quantize {config.quantize.dtype} calibrates on the run's training images: "
                            "pass --data-dir)") from None
        if (config.mode == "dom" and config.recalibrate_bn) or search is not None:
            raise DataError(f"{err} (DOM export re-estimates BatchNorm on the training data: pass --data-dir, "
                            f"or --no-recalibrate-bn to keep the stored statistics)") from None
        log.info("no data found (%s): verifying on random inputs only", err)
        return None


def provenance(checkpoint_path: str | Path, checkpoint: Checkpoint) -> dict[str, Any]:
    """What an export records about its source: the checkpoint file, its model and the run's data."""
    return {"source_checkpoint": Path(checkpoint_path).name, "source_sha256": file_sha256(checkpoint_path),
            "model": checkpoint.model.to_dict(), "data": data_settings(checkpoint.train_config),
            "preprocessing": checkpoint_preprocessing(checkpoint)}


def checkpoint_preprocessing(checkpoint: Checkpoint) -> dict[str, Any]:
    """The input a checkpoint's exports take: layout, shape, the mean and std it was trained with, their source."""
    settings, dataset = checkpoint.train_config, checkpoint.dataset or {}
    mean, std = dataset.get("mean") or settings.get("mean"), dataset.get("std") or settings.get("std")
    source = stats_source(settings, model_normalization(checkpoint.model_name))
    return preprocessing_record(checkpoint.input_shape, mean or (0.0,) * 3, std or (1.0,) * 3, source)


def write_seed_search(report: dict[str, Any], search: SeedSearch, table: list[dict[str, Any]], out: Path) -> None:
    """Add the seed search's table to ``report`` and rewrite the report beside ``out``."""
    report["seed_search"] = {"objective": search.objective, "max_drop_points": search.max_drop,
                             "target_macs": search.target_macs, "seeds": table}
    atomic_write_text(out.with_suffix(".json"), json.dumps(report, indent=2, sort_keys=True) + "\n")


def first_val_batch(splits: Splits) -> torch.Tensor | None:
    """The first 64 validation images (normalised): the real images an export is verified on."""
    from wascompress.data import BatchLoader

    return next((images for images, _ in BatchLoader(splits.val, 64, shuffle=False)), None)
