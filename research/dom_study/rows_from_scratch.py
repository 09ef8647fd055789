"""The rows trained from scratch: ``baseline``, ``paper-*``, ``sandwich*``, ``sandwich-ft``, ``scratch*``
and ``thin`` (study.py's docstring says what each is for)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from study_rows import BUDGET, CROP, row_was
from study_runs import Study, export_dom, export_run, load_json, onnx_facts, run_training, training_time

from wascompress.export.budget import seed_costs
from wascompress.export.exporter import ExportConfig
from wascompress.export.from_checkpoint import SeedSearch
from wascompress.models import create_model
from wascompress.models.cost import count_macs
from wascompress.train.config import TrainConfig
from wascompress.train.finetune import finetune_config
from wascompress.train.sandwich import choose_dom_seeds
from wascompress.was import WASConfig, apply_was_


def dom_seed_for_budget(study: Study, model: str, was: WASConfig) -> dict[str, Any]:
    """The DOM seed the sandwich rows deploy, chosen as the trainer chooses it (``choose_dom_seeds``):
    its pruned graph at or just under the budget (structure only: the same for every training seed)."""
    net = create_model(model, num_classes=10, width=study.scale.width)
    apply_was_(net, was)
    config = sandwich_config(study, model, 0, 1, was=was)
    return choose_dom_seeds(config, net, (3, 32, 32)).dom_budget["chosen"][0]


def baseline_unit(study: Study, model: str, seed: int) -> dict[str, Any]:
    folder = study.folder(model, "baseline", seed)
    epochs = study.scale.epochs[model]
    results = run_training(study.base_config(model, seed, epochs, None), folder / "run")
    aom, splits = export_run(study, folder / "run" / "best.pt", folder / "aom.onnx", ExportConfig(mode="aom"))
    return {**onnx_facts(aom, folder / "aom.onnx", splits.test), "epochs": str(epochs),
            "trainer_test_top1": results["test_acc_aom"], **training_time(folder / "run")}


def paper_unit(study: Study, model: str, seed: int, was: WASConfig, row: str) -> dict[str, Any]:
    folder = study.folder(model, row, seed)
    epochs = study.scale.epochs[model]
    results = run_training(study.base_config(model, seed, epochs, was), folder / "run")
    dom, splits = export_run(study, folder / "run" / "best.pt", folder / "dom.onnx", ExportConfig(mode="dom", seed=0),
                             search=SeedSearch(study.scale.search_seeds, target_macs=BUDGET),
                             bn_batches=study.scale.bn_batches)
    return {**onnx_facts(dom, folder / "dom.onnx", splits.test), "dom_seed": dom["seed"], "epochs": str(epochs),
            "bn_batches": study.scale.bn_batches,
            "aom_test_top1": results["test_acc_aom"], "was": was.describe(),
            **training_time(folder / "run")}


def sandwich_config(study: Study, model: str, seed: int, epochs: int, random_samples: int = 1,
                    was: WASConfig = CROP) -> TrainConfig:
    return study.base_config(model, seed, epochs, was, target_macs=BUDGET, search_seeds=study.scale.budget_seeds,
                             distill=True, select_mode="dom", was_samples=random_samples)


def sandwich_unit(study: Study, model: str, seed: int, row: str = "sandwich", random_samples: int = 1) -> dict[str, Any]:
    folder = study.folder(model, row, seed)
    epochs = study.scale.epochs[model]
    results = run_training(sandwich_config(study, model, seed, epochs, random_samples, row_was(row, model)), folder / "run")
    dom_seed = results["dom_seed"]
    report, splits = export_dom(study, folder / "run" / "best.pt", folder / "dom.onnx", dom_seed)
    return {**onnx_facts(report, folder / "dom.onnx", splits.test), "dom_seed": dom_seed, "epochs": str(epochs),
            "random_samples": random_samples, "bn_batches": study.scale.bn_batches,
            "aom_test_top1": results["test_acc_aom"], "trainer_dom_test_top1": results["test_acc_dom"],
            **training_time(folder / "run")}


def sandwich_ft_unit(study: Study, model: str, seed: int) -> dict[str, Any]:
    folder = study.folder(model, "sandwich-ft", seed)
    total, tune = study.scale.epochs[model], study.scale.finetune_epochs(model)
    first = run_training(sandwich_config(study, model, seed, total - tune), folder / "run")
    dom_seed = first["dom_seed"]
    config = finetune_config(folder / "run" / "best.pt", dom_seed, tune, distill=False)
    run_training(config, folder / "finetune")
    report, splits = export_dom(study, folder / "finetune" / "best.pt", folder / "dom.onnx", dom_seed)
    return {**onnx_facts(report, folder / "dom.onnx", splits.test), "dom_seed": dom_seed,
            "epochs": f"{total - tune}+{tune}", "bn_batches": study.scale.bn_batches, "finetune_distill": False,
            "aom_test_top1": first["test_acc_aom"],
            "dom_test_top1_before_finetune": first["test_acc_dom"],
            **training_time(folder / "run", folder / "finetune")}


def scratch_unit(study: Study, model: str, seed: int, row: str = "scratch") -> dict[str, Any]:
    folder = study.folder(model, row, seed)
    epochs = study.scale.epochs[model]
    dom_seed = dom_seed_for_budget(study, model, row_was(row, model))["seed"]
    config = study.base_config(model, seed, epochs, row_was(row, model), dom_seeds=(dom_seed,), train_pw=False, was_samples=0,
                               select_mode="dom")
    run_training(config, folder / "run")
    report, splits = export_dom(study, folder / "run" / "best.pt", folder / "dom.onnx", dom_seed)
    return {**onnx_facts(report, folder / "dom.onnx", splits.test), "dom_seed": dom_seed, "epochs": str(epochs),
            "bn_batches": study.scale.bn_batches, **training_time(folder / "run")}


def dom_row_macs(study: Study, model: str, seed: int, dom_row: str) -> int:
    """The MACs of a DOM row's exported graph (before that row has finished: from its seed choice)."""
    target = load_json(study.unit_path(model, dom_row, seed))
    if target is not None:
        return int(target["macs"])
    was = row_was(dom_row, model)
    net = create_model(model, num_classes=10, width=study.scale.width)
    apply_was_(net, was)
    return seed_costs(net, [dom_seed_for_budget(study, model, was)["seed"]], (3, 32, 32))[0].macs


THIN_STEPS = 64  # the thin row's width grid: multiples of 1/64 of the study's width


def thin_width(model: str, width: float, target: int) -> float:
    """The widest multiplier on a grid of ``width`` / THIN_STEPS whose network has at most ``target`` MACs."""
    for step in range(THIN_STEPS, 0, -1):
        candidate = width * step / THIN_STEPS
        if count_macs(create_model(model, num_classes=10, width=candidate)) <= target:
            return candidate
    raise RuntimeError(f"no width of {model} has at most {target:,} MACs")


def thin_unit(study: Study, model: str, seed: int) -> dict[str, Any]:
    """The baseline's network made uniformly thinner (every layer's channels scaled by one width factor)
    to at most the MACs of row 3's DOM, trained E epochs: the compression needing no tool at all."""
    folder = study.folder(model, "thin", seed)
    epochs = study.scale.epochs[model]
    width = thin_width(model, study.scale.width, dom_row_macs(study, model, seed, "sandwich"))
    config = replace(study.base_config(model, seed, epochs, None), width=width)
    results = run_training(config, folder / "run")
    report, splits = export_run(study, folder / "run" / "best.pt", folder / "thin.onnx", ExportConfig(mode="aom"))
    return {**onnx_facts(report, folder / "thin.onnx", splits.test), "epochs": str(epochs), "thin_width": width,
            "trainer_test_top1": results["test_acc_aom"], **training_time(folder / "run")}
