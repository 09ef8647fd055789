"""The WAS trainer: data, model, optimisation, honest evaluation, checkpoints that survive.

Sections: the run folder; setup (data, model, optimizer) ; resuming; the epoch loop; evaluation and
checkpoints; the final test. One process, or one per device under ``torchrun`` (only rank 0 writes).
Model selection uses a validation split carved from the training set; the test set is touched once, at
the end, for the reported numbers. Every evaluation re-estimates BatchNorm for the mode it measures.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from wascompress import __version__
from wascompress.checkpoint import load_checkpoint, save_checkpoint
from wascompress.data import DATA_DIR_ENV, BatchLoader
from wascompress.data.run_data import Splits, calibration_batches, load_splits
from wascompress.device import flush_denormals
from wascompress.errors import CheckpointError, ConfigError
from wascompress.evaluate import Accuracy, mode_accuracy
from wascompress.fileio import atomic_write_text
from wascompress.models import create_model
from wascompress.train.config import TrainConfig
from wascompress.train.distributed import DistContext, init_distributed
from wascompress.train.step import Distillation, Sandwich, sandwich_step, training_step
from wascompress.was import apply_was_, dom_draws, load_plain_state_dict, plain_state_dict, strip_was_, use_pw_

log = logging.getLogger(__name__)

RUN_FILES = ("config.json", "metrics.jsonl", "last.pt", "best.pt", "results.json")
# Settings a resumed run may change; anything else must match the checkpoint.
RESUMABLE_CHANGES = ("epochs", "device", "save_every", "amp", "channels_last", "workers")
EVAL_BATCH = 256


class Reporter(Protocol):
    """What the trainer tells about its progress (the CLI draws bars; the default logs lines)."""

    def epoch_start(self, epoch: int, epochs: int, steps: int, first_step: int) -> None: ...
    def step(self, loss: float) -> None: ...
    def epoch_end(self, metrics: dict[str, Any]) -> None: ...


class LogReporter:
    """Plain log lines, one per epoch."""

    def epoch_start(self, epoch: int, epochs: int, steps: int, first_step: int) -> None:
        pass

    def step(self, loss: float) -> None:
        pass

    def epoch_end(self, metrics: dict[str, Any]) -> None:
        log.info(format_metrics(metrics))


class QuietReporter(LogReporter):
    """Nothing at all (other ranks, or callers that report themselves)."""

    def epoch_end(self, metrics: dict[str, Any]) -> None:
        pass


QUIET = QuietReporter()


def format_metrics(m: dict[str, Any]) -> str:
    dom = f" val DOM {m['val_acc_dom'] * 100:5.2f}%" if m.get("val_acc_dom") is not None else ""
    return (f"epoch {m['epoch']:>3}/{m['epochs']}  loss {m['train_loss']:.4f}  train {m['train_acc'] * 100:5.2f}%"
            f"  val AOM {m['val_acc_aom'] * 100:5.2f}%{dom}  lr {m['lr']:.4g}  {m['images_per_s']:.0f} img/s"
            f"  {m.get('step_time_s', 0):.3f} s/step ({m.get('step', 'plain')}, {m.get('passes_per_step', 1)} passes)")


# ----------------------------------------------------------------------------------------------------
# The run folder


@dataclass(frozen=True)
class RunFolder:
    """The files of one run: config.json, metrics.jsonl, last.pt, best.pt, results.json."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def last(self) -> Path:
        return self.root / "last.pt"

    @property
    def best(self) -> Path:
        return self.root / "best.pt"

    @property
    def results(self) -> Path:
        return self.root / "results.json"

    def check(self, resume: bool, overwrite: bool) -> None:
        """Refuse to clobber a run, or to resume one that is not there; writes nothing."""
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"run folder {self.root} exists and is not a folder")
        if resume:
            if not self.last.is_file():
                raise CheckpointError(f"cannot resume: no checkpoint at {self.last}")
            return
        existing = [n for n in RUN_FILES if (self.root / n).exists()]
        if existing and not overwrite:
            raise ConfigError(f"run folder {self.root} already holds a run ({', '.join(existing)}); "
                              "pass --resume to continue it or --overwrite to replace it")

    def clear(self) -> None:
        """Remove a previous run's files (only ours; other files in the folder stay)."""
        for name in RUN_FILES:
            (self.root / name).unlink(missing_ok=True)


def config_for_resume(run_dir: str | Path, overrides: dict[str, Any]) -> TrainConfig:
    """The stored configuration of a run, with the settings a resume may change applied.

    Any other explicitly given setting that differs from the stored one is an error naming it.
    """
    run = RunFolder(Path(run_dir))
    run.check(resume=True, overwrite=False)
    checkpoint = load_checkpoint(run.last)
    stored = TrainConfig.from_dict(checkpoint["train_config"])
    data = stored.to_dict()
    for key, value in overrides.items():
        if value is None or key == "was" and not value:
            continue
        if key == "was":
            value = TrainConfig.from_dict({**data, "was": value}).to_dict()["was"]
        if key not in RESUMABLE_CHANGES and data.get(key) != value:
            raise ConfigError(f"cannot resume: the run was trained with {key}={data.get(key)!r}, not {value!r}")
        data[key] = value
    return TrainConfig.from_dict(data)


# ----------------------------------------------------------------------------------------------------
# Setup


def build_training_model(config: TrainConfig, num_classes: int) -> nn.Module:
    torch.manual_seed(config.seed)
    model = create_model(config.model, num_classes=num_classes, width=config.width)
    if config.was is not None:
        apply_was_(model, config.was)
    return model


def software_versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torchvision

    return {"wascompress": __version__, "torch": str(torch.__version__), "torchvision": str(torchvision.__version__),
            "onnx": str(onnx.__version__), "onnxruntime": str(onnxruntime.__version__),
            "python": platform.python_version()}


# ----------------------------------------------------------------------------------------------------
# Training the deployed sub-network on purpose (METHOD.md §6)


def _initial_weights(path: str) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["state_dict"]


def choose_dom_seed(config: TrainConfig, model: nn.Module, input_shape: tuple[int, int, int]) -> TrainConfig:
    """``config`` with the DOM seed whose pruned graph lands at or just under ``dom_target_macs``."""
    from wascompress.export.budget import closest_under, seed_costs

    costs = seed_costs(model, range(config.dom_search_seeds), input_shape)
    chosen = closest_under(costs, config.dom_target_macs)
    log.info("DOM seed %d: pruned graph at %.3f of the AOM's MACs (%s MACs; budget %g, %d seeds tried)",
             chosen.seed, chosen.ratio, f"{chosen.macs:,}", config.dom_target_macs, len(costs))
    return replace(config, dom_seeds=(chosen.seed,), dom_budget={
        "target": config.dom_target_macs, "chosen": chosen.as_dict(), "tried": [c.as_dict() for c in costs]})


def sub_network_recipe(config: TrainConfig, model: nn.Module, device: torch.device) -> Sandwich | None:
    """The sandwich step ``config`` asks for (None: the paper's step)."""
    if not config.sandwich:
        return None
    teacher = None
    if config.distill and config.teacher == "checkpoint":
        from wascompress.checkpoint import build_model

        teacher = strip_was_(build_model(load_checkpoint(config.init_checkpoint))).to(device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    distill = Distillation(config.distill_weight, config.distill_temperature) if config.distill else None
    return Sandwich(fixed=tuple(dom_draws(model, s) for s in config.dom_seeds), random_samples=config.was_samples,
                    train_pw=config.train_pw, distill=distill, teacher=teacher)


def describe_step(config: TrainConfig, recipe: Sandwich | None) -> str:
    if config.was is None:
        return "plain"
    if recipe is None:
        what = f"one random SW ({config.was.describe()})"
    else:
        parts = (["AOM on the labels"] if recipe.train_pw else []) + [f"DOM seed {s}" for s in config.dom_seeds]
        parts += [f"{recipe.random_samples} random SW"] if recipe.random_samples else []
        what = " + ".join(parts) + (f", distilled from the {config.teacher} (weight {config.distill_weight:g}, "
                                    f"T {config.distill_temperature:g})" if recipe.distill else "")
    warm = f"; PW alone for the first {config.was_warmup} epochs" if config.was_warmup else ""
    return what + warm


# ----------------------------------------------------------------------------------------------------
# Training


def train(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    reporter: Reporter | None = None,
    model: nn.Module | None = None,
) -> dict[str, Any]:
    """Train ``config`` into the run folder ``out_dir``; returns the final results (also results.json).

    ``model`` replaces the zoo model ``config.model`` names (e.g. a pruned network to fine-tune); its
    checkpoints then hold weights that only a model of that structure loads.
    """
    if config.data_dir is None and config.dataset != "synthetic" and os.environ.get(DATA_DIR_ENV):
        config = replace(config, data_dir=os.environ[DATA_DIR_ENV])  # record where the data really was
    ctx = init_distributed(config.device)
    try:
        return _train(config, RunFolder(Path(out_dir)), ctx, resume, overwrite, reporter or LogReporter(), model)
    finally:
        ctx.close()


def _train(
    config: TrainConfig, run: RunFolder, ctx: DistContext, resume: bool, overwrite: bool, reporter: Reporter,
    given_model: nn.Module | None = None,
) -> dict[str, Any]:
    run.check(resume, overwrite)
    checkpoint = load_checkpoint(run.last) if resume else None
    if checkpoint is not None:
        stored = checkpoint["train_config"]
        if stored["model"] != config.model:
            raise CheckpointError(f"{run.last} holds a {stored['model']!r} model, not {config.model!r}")
    device = ctx.device
    if device.type == "cpu":
        flush_denormals()
    if config.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    use_amp = config.amp if config.amp is not None else device.type == "cuda"
    channels_last = config.channels_last if config.channels_last is not None else device.type == "cuda"

    # --- data and model (nothing is written before these succeed)
    splits = load_splits(config.to_dict())
    num_classes = config.num_classes or splits.train.num_classes
    if int(splits.train.labels.max()) >= num_classes:
        raise ConfigError(f"num-classes {num_classes} is too small for the data set's labels")
    if given_model is not None:
        torch.manual_seed(config.seed)
        model = given_model
        if config.was is not None:
            apply_was_(model, config.was)
    else:
        model = build_training_model(config, num_classes)
    if config.init_checkpoint is not None and checkpoint is None:
        load_plain_state_dict(model, _initial_weights(config.init_checkpoint))
    if config.dom_target_macs is not None and not config.dom_seeds:
        config = choose_dom_seed(config, model, splits.train.image_shape)
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
                 if config.schedule == "cosine" else None)
    scaler = torch.amp.GradScaler("cuda") if use_amp and device.type == "cuda" else None
    autocast_dtype = torch.float16 if use_amp and device.type == "cuda" else None
    generator = torch.Generator().manual_seed(config.seed) if config.was is not None else None
    loader = BatchLoader(splits.train, config.batch_size, shuffle=True, augment=config.augment, drop_last=False,
                         seed=config.seed, rank=ctx.rank, world_size=ctx.world_size, device=device)
    calibration = calibration_batches(splits.train, config.bn_batches, config.batch_size, seed=config.seed)
    calibration = [c.to(device) for c in calibration]

    recipe = sub_network_recipe(config, model, device)
    state: dict[str, Any] = {"epoch": 0, "step": 0, "partial": [0.0, 0.0, 0.0], "metrics": [], "best": None}
    if checkpoint is not None:
        load_plain_state_dict(model, checkpoint["state_dict"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        if scheduler is not None and checkpoint.get("scheduler"):
            scheduler.load_state_dict(checkpoint["scheduler"])
        restore_rng_state(checkpoint["rng"], generator, device)
        state.update(epoch=checkpoint["epoch"], step=checkpoint["step_in_epoch"],
                     partial=list(checkpoint["partial"]), metrics=list(checkpoint["metrics"]),
                     best=checkpoint.get("best"))
        log.info("resuming %s at epoch %d, step %d", run.root, state["epoch"] + 1, state["step"])
    core = model
    if ctx.distributed:
        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    dataset_info = {"name": config.dataset, "data_dir": config.data_dir, "num_classes": num_classes,
                    "mean": list(splits.train.mean), "std": list(splits.train.std),
                    "image_size": list(splits.train.image_shape[1:])}
    if ctx.is_main:
        run.root.mkdir(parents=True, exist_ok=True)
        if not resume:
            run.clear()
        atomic_write_text(run.config, json.dumps({
            "config": config.to_dict(), "num_classes": num_classes, "versions": software_versions(),
            "world_size": ctx.world_size, "device": str(device), "amp": use_amp, "channels_last": channels_last,
            "step": describe_step(config, recipe),
            "sizes": {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)},
        }, indent=2) + "\n")

    def make_checkpoint(bn_stats: str) -> dict[str, Any]:
        return {
            "model": {"name": config.model, "num_classes": num_classes, "width": config.width,
                      **({"custom_structure": True} if given_model is not None else {})},
            "was": config.was.to_dict() if config.was is not None else None,
            "state_dict": plain_state_dict(core),
            "bn_stats": bn_stats,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "epoch": state["epoch"], "step_in_epoch": state["step"], "partial": list(state["partial"]),
            "rng": rng_state(generator, device),
            "train_config": config.to_dict(), "dataset": dataset_info,
            "metrics": list(state["metrics"]), "best": state["best"],
            "versions": software_versions(),
        }

    # --- the epoch loop
    for epoch in range(state["epoch"], config.epochs):
        model.train()
        loader.set_epoch(epoch)
        first = state["step"]
        loader.resume_from(first)
        reporter.epoch_start(epoch + 1, config.epochs, len(loader), first)
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        seen = 0
        warmup = config.was is not None and epoch < config.was_warmup  # PW alone (progressive shrinking)
        if config.was is not None:
            use_pw_(core)
        steps_run = 0
        start = time.perf_counter()
        for step, (images, labels) in enumerate(loader, start=first + 1):
            steps_run += 1
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            if warmup:
                loss, hits = training_step(model, images, labels, optimizer, None,
                                           scaler=scaler, autocast_dtype=autocast_dtype)
            elif recipe is not None:
                loss, hits = sandwich_step(model, images, labels, optimizer, generator, recipe,
                                           scaler=scaler, autocast_dtype=autocast_dtype)
            else:
                loss, hits = training_step(model, images, labels, optimizer, generator,
                                           scaler=scaler, autocast_dtype=autocast_dtype)
            loss_sum += loss
            correct += hits
            seen += labels.shape[0]
            reporter.step(float(loss) / labels.shape[0])
            if config.save_every and step % config.save_every == 0 and step < len(loader):
                state["step"] = step
                state["partial"] = [state["partial"][0] + float(loss_sum), state["partial"][1] + int(correct),
                                    state["partial"][2] + seen]
                loss_sum.zero_(), correct.zero_()
                seen = 0
                if ctx.is_main:
                    save_checkpoint(make_checkpoint("running"), run.last)
        elapsed = time.perf_counter() - start
        totals = ctx.all_reduce_sum([state["partial"][0] + float(loss_sum), state["partial"][1] + int(correct),
                                     state["partial"][2] + seen, float(seen)])
        if scheduler is not None:
            scheduler.step()

        # --- evaluation: DOM first, then AOM, so the model keeps the AOM statistics for the checkpoint
        val_dom = None
        if config.was is not None:
            val_dom = _reduced(ctx, mode_accuracy(core, splits.val, mode="dom", seed=config.eval_seed,
                                                  calibration=calibration, batch_size=EVAL_BATCH, device=device,
                                                  rank=ctx.rank, world_size=ctx.world_size))
        val_aom = _reduced(ctx, mode_accuracy(core, splits.val, mode="aom", calibration=calibration,
                                              batch_size=EVAL_BATCH, device=device, rank=ctx.rank,
                                              world_size=ctx.world_size))
        metrics = {
            "epoch": epoch + 1, "epochs": config.epochs, "lr": optimizer.param_groups[0]["lr"],
            "train_loss": totals[0] / max(totals[2], 1), "train_acc": totals[1] / max(totals[2], 1),
            "val_acc_aom": val_aom.top1, "val_acc_dom": val_dom.top1 if val_dom is not None else None,
            "epoch_time_s": elapsed, "images_per_s": totals[3] / max(elapsed, 1e-9) * 1.0,
            "step_time_s": elapsed / max(steps_run, 1),
            "step": "plain" if config.was is None or warmup else ("sandwich" if recipe is not None else "was"),
            "passes_per_step": 1 if recipe is None or warmup else recipe.passes,
        }
        if not all(math.isfinite(metrics[k]) for k in ("train_loss", "train_acc", "val_acc_aom")):
            log.warning("epoch %d: non-finite metrics %s", epoch + 1, metrics)
        state["metrics"].append(metrics)
        state["epoch"], state["step"], state["partial"] = epoch + 1, 0, [0.0, 0.0, 0.0]
        score = metrics["val_acc_dom"] if config.select_mode == "dom" else metrics["val_acc_aom"]
        improved = state["best"] is None or score > state["best"]["val_acc"]
        if improved:
            state["best"] = {"epoch": epoch + 1, "mode": config.select_mode, "val_acc": score,
                             "seed": config.eval_seed if config.select_mode == "dom" else None}
        if ctx.is_main:
            checkpoint_now = make_checkpoint("aom")
            save_checkpoint(checkpoint_now, run.last)
            if improved:
                save_checkpoint(checkpoint_now, run.best)
            atomic_write_text(run.metrics, "".join(json.dumps(m) + "\n" for m in state["metrics"]))
        reporter.epoch_end(metrics)
        ctx.barrier()

    # --- the test set, once, for the reported numbers (best.pt)
    fingerprints = _gather_fingerprints(ctx, core)  # the trained replicas, before best.pt is loaded
    results = _final_test(config, run, ctx, core, splits, calibration, device, state)
    results["last_weights_sha256_per_rank"] = fingerprints
    if ctx.is_main:
        atomic_write_text(run.results, json.dumps(results, indent=2) + "\n")
    ctx.barrier()
    return results


def rng_state(generator: torch.Generator | None, device: torch.device) -> dict[str, Any]:
    """Every random state a resume needs: the WAS draws', the CPU's and, on CUDA, the devices' (dropout)."""
    state: dict[str, Any] = {"was": generator.get_state() if generator is not None else None,
                             "torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any], generator: torch.Generator | None, device: torch.device) -> None:
    """Put back what :func:`rng_state` saved (a CUDA state only where the run is on CUDA again)."""
    if generator is not None:
        generator.set_state(state["was"])
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state_all(state["cuda"])


def _reduced(ctx: DistContext, accuracy: Accuracy) -> Accuracy:
    correct, total = ctx.all_reduce_sum([float(accuracy.correct), float(accuracy.total)])
    return Accuracy(int(correct), int(total))


def weights_fingerprint(model: nn.Module) -> str:
    """sha256 of the model's Plain Weights and buffers, in state-dict order."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in plain_state_dict(model).items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _gather_fingerprints(ctx: DistContext, model: nn.Module) -> list[str]:
    """Every rank's weights fingerprint (they must agree: DDP keeps replicas identical)."""
    mine = weights_fingerprint(model)
    if not ctx.distributed:
        return [mine]
    import torch.distributed as dist

    gathered: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(gathered, mine)
    return [str(g) for g in gathered]


def _final_test(config: TrainConfig, run: RunFolder, ctx: DistContext, core: nn.Module, splits: Splits,
                calibration: list[torch.Tensor], device: torch.device, state: dict[str, Any]) -> dict[str, Any]:
    ctx.barrier()
    best = load_checkpoint(run.best) if run.best.is_file() else None
    if best is not None:
        load_plain_state_dict(core, {k: v.to(device) for k, v in best["state_dict"].items()})
    test_dom = None
    if config.was is not None:
        test_dom = _reduced(ctx, mode_accuracy(core, splits.test, mode="dom", seed=config.eval_seed,
                                               calibration=calibration, batch_size=EVAL_BATCH, device=device,
                                               rank=ctx.rank, world_size=ctx.world_size)).top1
    test_aom = _reduced(ctx, mode_accuracy(core, splits.test, mode="aom", calibration=calibration,
                                           batch_size=EVAL_BATCH, device=device, rank=ctx.rank,
                                           world_size=ctx.world_size)).top1
    return {
        "best": state["best"], "epochs": state["epoch"],
        "test_acc_aom": test_aom, "test_acc_dom": test_dom, "dom_seed": config.eval_seed if test_dom is not None else None,
        "last": state["metrics"][-1] if state["metrics"] else None,
        "sizes": {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)},
    }
