"""The WAS trainer: data, model, optimisation, honest evaluation, checkpoints that survive.

A run goes through named stages: setup (:func:`set_up`: data, model and the final configuration, which
the :class:`TrainingSession` built from it never changes; then optimizer and loader; nothing is written
before these succeed), restoring a checkpoint, writing the configuration, then per epoch training,
evaluation and checkpointing, and the final test. One process, or one per device under
``torchrun`` (only rank 0 writes). Model selection uses a validation split carved from the training
set; the test set is touched once, at the end, for the reported numbers. Every evaluation re-estimates
BatchNorm for the mode it measures.
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
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from wascompress import __version__
from wascompress.checkpoint import Checkpoint, ModelSpec, Progress, load_checkpoint, state_sha256, trained_doms
from wascompress.data import DATA_DIR_ENV, BatchLoader, normalization
from wascompress.data.run_data import Splits, calibration_batches, calibration_images, load_splits
from wascompress.device import flush_denormals, keep_freed_memory
from wascompress.errors import CheckpointError, ConfigError
from wascompress.evaluate import Accuracy, mode_accuracy
from wascompress.fileio import atomic_write_text
from wascompress.models import create_model
from wascompress.models.registry import model_normalization
from wascompress.fit import fit_seeds_
from wascompress.train.config import INIT_TEACHER, TrainConfig
from wascompress.train.distributed import DistContext, init_distributed
from wascompress.train.memory_format import probe_memory_format
from wascompress.train.reporting import QUIET, LogReporter, QuietReporter, Reporter, format_metrics  # noqa: F401
from wascompress.train.run_folder import PATH_SETTINGS, RUN_FILES, RESUMABLE_CHANGES, RunFolder, config_for_resume  # noqa: F401
from wascompress.train.sandwich import choose_dom_seeds, describe_step, frozen_teacher, sandwich_for
from wascompress.train.step import sandwich_step, training_step
from wascompress.was import apply_was_, load_plain_state_dict, plain_state_dict, use_pw_
from wascompress.was.fitted import add_slots_for_state_, trained_correction
from wascompress.weights import WeightsFile, load_weights_, read_weights

log = logging.getLogger(__name__)

EVAL_BATCH = 256


def software_versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torchvision

    return {"wascompress": __version__, "torch": str(torch.__version__), "torchvision": str(torchvision.__version__),
            "onnx": str(onnx.__version__), "onnxruntime": str(onnxruntime.__version__),
            "python": platform.python_version()}


def train(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    reporter: Reporter | None = None,
    model: nn.Module | None = None,
    setup: Setup | None = None,
) -> dict[str, Any]:
    """Train ``config`` into the run folder ``out_dir``; returns the final results (also results.json).

    ``model`` replaces the zoo model ``config.model`` names (e.g. a pruned network to fine-tune); its
    checkpoints then hold weights that only a model of that structure loads. ``setup``: the :func:`set_up`
    of ``config`` a caller made already to check the run before training (a new run only; its final
    configuration is the one trained).
    """
    ctx = init_distributed(config.device)
    try:
        run = RunFolder(Path(out_dir))
        run.check(resume, overwrite)
        checkpoint = resume_state(run, config) if resume else None
        if setup is None or resume:
            setup = set_up(config, ctx, checkpoint, model)
        session = TrainingSession(setup, run, ctx, checkpoint)
        session.write_config(resume)
        return session.run(reporter or LogReporter())
    finally:
        ctx.close()


def resume_state(run: RunFolder, config: TrainConfig) -> Checkpoint:
    """The checkpoint a resumed run continues from (its last.pt), checked to be one of ``config``'s model."""
    checkpoint = load_checkpoint(run.last)
    if checkpoint.model_name != config.model:
        raise CheckpointError(f"{run.last} holds a {checkpoint.model_name!r} model, not {config.model!r}")
    if not checkpoint.resumable:
        raise CheckpointError(f"{run.last} holds no optimizer and random states to resume from")
    return checkpoint


# --- setup: the data, the model and the final configuration, before the session


@dataclass
class Setup:
    """What a session starts from: the run's final configuration and what settling it built."""

    config: TrainConfig  # final: the session never changes it
    splits: Splits
    num_classes: int
    model: nn.Module  # WAS attached, start weights loaded (a new run), on the CPU in the contiguous format
    calibration: list[torch.Tensor]  # the BatchNorm calibration batches (on the CPU)
    start_weights: WeightsFile | None  # the file the run started from, when still needed (read_start_weights)
    custom_structure: bool  # the model was handed in rather than built from config.model


def set_up(config: TrainConfig, ctx: DistContext, checkpoint: Checkpoint | None,
           given_model: nn.Module | None = None) -> Setup:
    """The setup stage: the data, the model (``given_model`` or the zoo's), the start weights and the
    final configuration (:func:`settle_paths`, :func:`settle_config`); nothing is written."""
    configure_torch(config, ctx.device)
    config = settle_normalization(settle_paths(config))  # before the data is read
    start = read_start_weights(config, checkpoint)  # a missing weights file before the data is scanned
    splits = load_splits(config.to_dict())
    num_classes = config.num_classes or splits.train.num_classes
    if int(splits.train.labels.max()) >= num_classes:
        raise ConfigError(f"num-classes {num_classes} is too small for the data set's labels")
    model = build_training_model(config, num_classes, given_model)
    if start is not None and checkpoint is None:
        load_weights_(model, start, config.model)
    calibration = calibration_batches(splits.train, config.bn_batches, config.batch_size, seed=config.seed)
    probe_images = (calibration or calibration_batches(splits.train, 1, config.batch_size, seed=0))[0]
    config = settle_config(config, ctx=ctx, model=model, probe_images=probe_images, num_classes=num_classes,
                           start=start, resumed=checkpoint)
    if checkpoint is not None:
        add_slots_for_state_(model, checkpoint.state_dict)  # the fitted DOMs' corrections, before the optimizer
    elif config.fit_doms:
        config = fit_doms_(config, model, splits)
    return Setup(config, splits, num_classes, model, calibration, start, given_model is not None)


def settle_config(config: TrainConfig, *, ctx: DistContext, model: nn.Module, probe_images: torch.Tensor,
                  num_classes: int, start: WeightsFile | None = None, resumed: Checkpoint | None = None) -> TrainConfig:
    """``config`` with the settings the trainer decides from the model decided, so the run records what
    it did: ``init_sha256`` (of the start weights), ``dom_seeds`` (one per budget of ``target_macs``)
    and ``channels_last`` (a resumed run's, else :func:`fastest_memory_format` on ``probe_images``)."""
    if start is not None:
        config = replace(config, init_sha256=start.sha256)
    if config.target_macs is not None and not config.dom_seeds:
        config = choose_dom_seeds(config, model, tuple(probe_images.shape[1:]))
    if config.channels_last is None and resumed is not None:  # a resumed run keeps its format
        config = replace(config, channels_last=resumed.train_config.get("channels_last"))
    if config.channels_last is None:
        config = replace(config, channels_last=fastest_memory_format(model, probe_images, num_classes, ctx))
    return config


def fit_doms_(config: TrainConfig, model: nn.Module, splits: Splits) -> TrainConfig:
    """Fit every DOM seed of ``config`` to ``model``'s start weights (:func:`wascompress.fit.fit_dom_`) on
    ``config.fit_images`` training images (the calibration batches' source and order); ``config`` with
    each fit's record in its ``dom_budget``."""
    images = calibration_images(splits.train, config.fit_images, config.batch_size, seed=config.seed)
    records = fit_seeds_(model, config.dom_seeds, images)
    return replace(config, dom_budget={**(config.dom_budget or {}), "fits": records})


def settle_paths(config: TrainConfig) -> TrainConfig:
    """``config`` with ``data_dir`` ($WASCOMPRESS_DATA_DIR when not given), ``init_from`` and a teacher file
    resolved to absolute paths, so the run records where its files really were: export and evaluation read
    them back from any folder."""
    if config.data_dir is None and config.dataset != "synthetic" and os.environ.get(DATA_DIR_ENV):
        config = replace(config, data_dir=os.environ[DATA_DIR_ENV])
    resolved = {name: str(Path(value).resolve()) for name in PATH_SETTINGS
                if (value := getattr(config, name)) is not None and value != INIT_TEACHER}
    return replace(config, **resolved)


def settle_normalization(config: TrainConfig) -> TrainConfig:
    """``config`` with ``mean`` / ``std`` decided by ``normalize`` when not given: the model's own (timm's
    pretrained_cfg), a preset's, or None (the training images' statistics), so the run records them."""
    if config.mean is not None or config.normalize == normalization.DATA:
        return config
    stats = (model_normalization(config.model) if config.normalize == normalization.MODEL
             else normalization.PRESETS[config.normalize])
    return replace(config, mean=stats[0], std=stats[1]) if stats is not None else config


def configure_torch(config: TrainConfig, device: torch.device) -> None:
    """The process-wide settings a run's arithmetic depends on (before any model is built)."""
    if device.type == "cpu":
        flush_denormals()
        keep_freed_memory()
    if config.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def build_training_model(config: TrainConfig, num_classes: int, given_model: nn.Module | None = None) -> nn.Module:
    """``given_model`` or the zoo's ``config.model``, with WAS attached if ``config`` has WAS."""
    torch.manual_seed(config.seed)
    model = given_model if given_model is not None else create_model(
        config.model, num_classes=num_classes, width=config.width, kwargs=config.model_kwargs)
    if config.was is not None:
        apply_was_(model, config.was)
    return model


def read_start_weights(config: TrainConfig, checkpoint: Checkpoint | None) -> WeightsFile | None:
    """The weights file the run starts from, when it is needed: a new run loads it, a resumed one only
    for its frozen teacher, and then the file must be the one the run started from."""
    if config.init_from is None or (checkpoint is not None and config.teacher != INIT_TEACHER):
        return None
    start = read_weights(config.init_from)
    if config.init_sha256 is not None and start.sha256 != config.init_sha256:
        raise CheckpointError(f"{config.init_from} changed since the run started (sha256 {start.sha256[:12]}, "
                              f"recorded {config.init_sha256[:12]}): its teacher would differ")
    return start


def fastest_memory_format(model: nn.Module, images: torch.Tensor, num_classes: int, ctx: DistContext) -> bool:
    """Channels-last on CUDA; on the CPU the faster format for this model, timed on rank 0 (all ranks
    must agree: DistributedDataParallel's buckets follow the parameters' layout)."""
    if ctx.device.type == "cuda":
        return True
    choice = 0.0
    if ctx.is_main:
        try:
            probe = probe_memory_format(model, images.to(ctx.device), num_classes)
        except Exception as err:  # noqa: BLE001  (an optimisation: a model it cannot copy or run twice trains as given)
            log.info("memory format: contiguous (channels-last could not be timed: %s)", err)
        else:
            choice = float(probe.channels_last)
            log.info("memory format: %s (a channels-last training step took %.2fx the contiguous one's time "
                     "here; set channels_last to fix it)", "channels-last" if probe.channels_last else "contiguous",
                     probe.ratio)
    return ctx.all_reduce_sum([choice])[0] > 0.5


@dataclass
class EpochTotals:
    """One epoch's training figures (this process's share, except ``totals``: reduced over ranks)."""

    totals: list[float]  # loss sum, correct, images, images of this session
    elapsed_s: float
    steps_run: int
    warmup: bool


class TrainingSession:
    """One process's training run, from a :class:`Setup`: the optimizer, the loader, the step's sandwich
    and, when resuming, the checkpoint's state. Its configuration is final (``settle_config``); nothing is
    written before the constructor succeeds."""

    def __init__(self, setup: Setup, run: RunFolder, ctx: DistContext, checkpoint: Checkpoint | None = None) -> None:
        self.config = config = setup.config
        self.run_folder, self.ctx, self.custom_structure = run, ctx, setup.custom_structure
        self.splits, self.num_classes = setup.splits, setup.num_classes
        self.device = device = ctx.device
        self.use_amp = config.amp if config.amp is not None else device.type == "cuda"
        self.calibration = [c.to(device) for c in setup.calibration]
        self.channels_last = bool(config.channels_last)
        model = setup.model.to(device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                         weight_decay=config.weight_decay)
        self.scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=config.epochs)
                          if config.schedule == "cosine" else None)
        self.scaler = torch.amp.GradScaler("cuda") if self.use_amp and device.type == "cuda" else None
        self.autocast_dtype = torch.float16 if self.use_amp and device.type == "cuda" else None
        self.generator = torch.Generator().manual_seed(config.seed) if config.was is not None else None
        self.loader = BatchLoader(setup.splits.train, config.batch_size, shuffle=True, augment=config.augment,
                                  drop_last=False, seed=config.seed, rank=ctx.rank, world_size=ctx.world_size,
                                  device=device)
        teacher = (frozen_teacher(config, setup.start_weights, self.num_classes, device)
                   if config.teacher is not None else None)
        self.sandwich = sandwich_for(config, model, teacher)
        self.progress = Progress()
        self.core = model
        if checkpoint is not None:
            self._restore(checkpoint)
        else:  # a new run's random state (dropout) is the seed's, whatever its setup drew (a seed search or not)
            torch.manual_seed(config.seed)
        self.model = (DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
                      if ctx.distributed else model)

    # --- resuming and writing

    def _restore(self, checkpoint: Checkpoint) -> None:
        load_plain_state_dict(self.core, checkpoint.state_dict)
        self.optimizer.load_state_dict(checkpoint.optimizer)
        if self.scheduler is not None and checkpoint.scheduler:
            self.scheduler.load_state_dict(checkpoint.scheduler)
        restore_rng_state(checkpoint.rng, self.generator, self.device)
        self.progress = checkpoint.progress.snapshot()
        log.info("resuming %s at epoch %d, step %d", self.run_folder.root, self.progress.epoch + 1, self.progress.step)

    def write_config(self, resume: bool) -> None:
        """Create the run folder (clearing a previous run unless resuming) and write config.json."""
        if not self.ctx.is_main:
            return
        run, config, splits = self.run_folder, self.config, self.splits
        run.root.mkdir(parents=True, exist_ok=True)
        if not resume:
            run.clear()
        atomic_write_text(run.config, json.dumps({
            "config": config.to_dict(), "num_classes": self.num_classes, "versions": software_versions(),
            "world_size": self.ctx.world_size, "device": str(self.device), "amp": self.use_amp,
            "channels_last": self.channels_last, "step": describe_step(config, self.sandwich),
            "sizes": {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)},
        }, indent=2) + "\n")

    def checkpoint(self, bn_stats: str) -> Checkpoint:
        """The run as it stands, ``bn_stats`` naming the BatchNorm statistics the weights hold."""
        config, train_set = self.config, self.splits.train
        return Checkpoint(
            model=ModelSpec(config.model, self.num_classes, config.width, config.model_kwargs, self.custom_structure),
            state_dict=plain_state_dict(self.core), train_config=config.to_dict(),
            was=config.was.to_dict() if config.was is not None else None, bn_stats=bn_stats,
            dataset={"name": config.dataset, "data_dir": config.data_dir, "num_classes": self.num_classes,
                     "mean": list(train_set.mean), "std": list(train_set.std),
                     "image_size": list(train_set.input_shape[1:])},
            progress=self.progress.snapshot(), optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict() if self.scheduler is not None else None,
            rng=rng_state(self.generator, self.device), versions=software_versions(),
        )

    # --- the stages of an epoch

    def run(self, reporter: Reporter) -> dict[str, Any]:
        """Every remaining epoch, then the final test; returns the results (also results.json)."""
        for epoch in range(self.progress.epoch, self.config.epochs):
            totals = self.train_epoch(epoch, reporter)
            metrics = self.end_epoch(epoch, totals)
            reporter.epoch_end(metrics)
            self.ctx.barrier()
        return self.finish()

    def train_epoch(self, epoch: int, reporter: Reporter) -> EpochTotals:
        """One epoch of steps (from where a checkpoint within it stopped)."""
        config, progress, device = self.config, self.progress, self.device
        self.model.train()
        self.loader.set_epoch(epoch)
        first = progress.step
        self.loader.resume_from(first)
        reporter.epoch_start(epoch + 1, config.epochs, len(self.loader), first)
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        seen = steps_run = 0
        warmup = config.was is not None and epoch < config.was_warmup  # PW alone (progressive shrinking)
        if config.was is not None:
            use_pw_(self.core)
        start = time.perf_counter()
        for step, (images, labels) in enumerate(self.loader, start=first + 1):
            steps_run += 1
            loss, hits = self._step(images, labels, warmup)
            loss_sum += loss
            correct += hits
            seen += labels.shape[0]
            reporter.step(float(loss) / labels.shape[0])
            if config.save_every and step % config.save_every == 0 and step < len(self.loader):
                progress.step = step
                progress.partial = [progress.partial[0] + float(loss_sum), progress.partial[1] + int(correct),
                                    progress.partial[2] + seen]
                loss_sum.zero_(), correct.zero_()
                seen = 0
                if self.ctx.is_main:
                    self.checkpoint("running").save(self.run_folder.last)
        elapsed = time.perf_counter() - start
        totals = self.ctx.all_reduce_sum([progress.partial[0] + float(loss_sum), progress.partial[1] + int(correct),
                                          progress.partial[2] + seen, float(seen)])
        if self.scheduler is not None:
            self.scheduler.step()
        return EpochTotals(totals, elapsed, steps_run, warmup)

    def _step(self, images: torch.Tensor, labels: torch.Tensor, warmup: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        amp = {"scaler": self.scaler, "autocast_dtype": self.autocast_dtype}
        if warmup:
            return training_step(self.model, images, labels, self.optimizer, None, **amp)
        if self.sandwich is not None:
            return sandwich_step(self.model, images, labels, self.optimizer, self.generator, self.sandwich, **amp)
        return training_step(self.model, images, labels, self.optimizer, self.generator, **amp)

    def dom_seeds(self) -> list[int]:
        """The DOM seeds evaluated: the trained ones when several (one per budget), else the eval seed."""
        seeds = self.config.dom_seeds
        return list(seeds) if len(seeds) > 1 else [self.config.eval_seed]

    def accuracies(self, images: Any) -> tuple[float, dict[int, float]]:
        """Top-1 in AOM and (with WAS) in each DOM of :meth:`dom_seeds`: DOMs first, then AOM, so the model
        keeps the AOM statistics for the checkpoint."""
        ctx, common = self.ctx, {"calibration": self.calibration, "batch_size": EVAL_BATCH, "device": self.device,
                                 "rank": self.ctx.rank, "world_size": self.ctx.world_size}
        doms = {}
        if self.config.was is not None:
            for seed in self.dom_seeds():
                fitted = trained_correction(seed, self.config.fit_doms, self.config.dom_seeds)
                doms[seed] = _reduced(ctx, mode_accuracy(self.core, images, mode="dom", seed=seed, fitted=fitted,
                                                         **common)).top1
        return _reduced(ctx, mode_accuracy(self.core, images, mode="aom", **common)).top1, doms

    def end_epoch(self, epoch: int, epoch_totals: EpochTotals) -> dict[str, Any]:
        """Evaluate, record the metrics, choose best.pt, write the checkpoints; returns the metrics."""
        config, progress, sandwich = self.config, self.progress, self.sandwich
        totals, elapsed, warmup = epoch_totals.totals, epoch_totals.elapsed_s, epoch_totals.warmup
        val_aom, val_doms = self.accuracies(self.splits.val)
        metrics = {
            "epoch": epoch + 1, "epochs": config.epochs, "lr": self.optimizer.param_groups[0]["lr"],
            "train_loss": totals[0] / max(totals[2], 1), "train_acc": totals[1] / max(totals[2], 1),
            "val_acc_aom": val_aom, "val_acc_dom": val_doms.get(config.eval_seed),
            **({"val_acc_doms": {str(k): v for k, v in val_doms.items()}} if len(val_doms) > 1 else {}),
            "epoch_time_s": elapsed, "images_per_s": totals[3] / max(elapsed, 1e-9) * 1.0,
            "step_time_s": elapsed / max(epoch_totals.steps_run, 1),
            "steps_run": epoch_totals.steps_run,  # by this process: fewer in an epoch resumed mid-way
            "step": "plain" if config.was is None or warmup else ("sandwich" if sandwich is not None else "was"),
            "passes_per_step": 1 if sandwich is None or warmup else sandwich.passes,
        }
        if not all(math.isfinite(metrics[k]) for k in ("train_loss", "train_acc", "val_acc_aom")):
            log.warning("epoch %d: non-finite metrics %s", epoch + 1, metrics)
        progress.metrics.append(metrics)
        progress.epoch, progress.step, progress.partial = epoch + 1, 0, [0.0, 0.0, 0.0]
        score = (sum(val_doms.values()) / len(val_doms)) if config.select_mode == "dom" else val_aom  # several: mean
        improved = progress.best is None or score > progress.best["val_acc"]
        if improved:
            progress.best = {"epoch": epoch + 1, "mode": config.select_mode, "val_acc": score,
                             "seed": config.eval_seed if config.select_mode == "dom" else None}
        if self.ctx.is_main:
            now = self.checkpoint("aom")
            now.save(self.run_folder.last)
            if improved:
                now.save(self.run_folder.best)
            atomic_write_text(self.run_folder.metrics, "".join(json.dumps(m) + "\n" for m in progress.metrics))
        return metrics

    # --- the test set, once, for the reported numbers (best.pt)

    def finish(self) -> dict[str, Any]:
        ctx, config, splits, run = self.ctx, self.config, self.splits, self.run_folder
        fingerprints = _gather_fingerprints(ctx, self.core)  # the trained replicas, before best.pt is loaded
        ctx.barrier()
        best = load_checkpoint(run.best) if run.best.is_file() else None
        if best is not None:
            load_plain_state_dict(self.core, {k: v.to(self.device) for k, v in best.state_dict.items()})
        test_aom, test_doms = self.accuracies(splits.test)
        test_dom = test_doms.get(config.eval_seed)
        results = {
            "best": self.progress.best, "epochs": self.progress.epoch,
            "test_acc_aom": test_aom, "test_acc_dom": test_dom,
            "dom_seed": config.eval_seed if test_dom is not None else None,
            **({"test_acc_doms": {str(k): v for k, v in test_doms.items()}} if len(test_doms) > 1 else {}),
            **({"budgets": budget_results(config, test_doms)} if config.dom_budget else {}),
            "last": self.progress.metrics[-1] if self.progress.metrics else None,
            "sizes": {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)},
            "last_weights_sha256_per_rank": fingerprints,
        }
        if ctx.is_main:
            atomic_write_text(run.results, json.dumps(results, indent=2) + "\n")
        ctx.barrier()
        return results


def budget_results(config: TrainConfig, test_doms: dict[int, float]) -> list[dict[str, Any]]:
    """Each MAC budget's DOM seed, its pruned MACs and its test accuracy."""
    return [{"target": c["target"], "seed": c["seed"], "mac_ratio": c["ratio"], "macs": c["macs"],
             "test_acc": test_doms.get(c["seed"])} for c in trained_doms(config.dom_budget)]


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
    return state_sha256(plain_state_dict(model))


def _gather_fingerprints(ctx: DistContext, model: nn.Module) -> list[str]:
    """Every rank's weights fingerprint (they must agree: DDP keeps replicas identical)."""
    mine = weights_fingerprint(model)
    if not ctx.distributed:
        return [mine]
    import torch.distributed as dist

    gathered: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(gathered, mine)
    return [str(g) for g in gathered]
