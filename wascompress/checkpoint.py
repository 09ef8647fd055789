"""Checkpoints: one file holding Plain Weights, the WAS configuration and everything a resume needs.

:class:`Checkpoint` owns that file: its fields, their version and the conversion to and from what is on
disk. On disk a checkpoint is a dict of plain Python values and tensors (``format``, ``version`` and one
key per field), written atomically and read with ``torch.load(weights_only=True)``, so loading one never
runs code. Its ``state_dict`` holds PW under the plain layer names with the BatchNorm statistics
re-estimated for PW (AOM), so a stripped model loads it directly; :meth:`Checkpoint.build_model` rebuilds
the model, WAS attached, from the checkpoint alone.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from wascompress.data.geometry import DEFAULT_IMAGE_SIZE, image_size
from wascompress.errors import CheckpointError
from wascompress.fileio import atomic_torch_save
from wascompress.models import create_model
from wascompress.was import WASConfig, apply_was_, load_plain_state_dict
from wascompress.was.fitted import add_slots_for_state_, trained_correction, without_corrections

FORMAT = "wascompress-checkpoint"
VERSION = 1  # bump when a field changes meaning; a reader refuses other versions in one line


@dataclass(frozen=True)
class ModelSpec:
    """The model a checkpoint's weights fit: what :func:`wascompress.models.create_model` needs to build it."""

    name: str  # zoo name, timm:NAME, torchvision:NAME or "package.module:factory"
    num_classes: int
    width: float = 1.0  # channel multiplier of zoo models
    kwargs: dict[str, Any] | None = None  # keyword arguments of the model's builder (besides num_classes)
    custom_structure: bool = False  # a model handed to the trainer (e.g. pruned): ``name`` alone cannot rebuild it

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "num_classes": self.num_classes, "width": self.width,
                **({"kwargs": self.kwargs} if self.kwargs else {}),
                **({"custom_structure": True} if self.custom_structure else {})}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelSpec":
        return cls(name=data["name"], num_classes=data["num_classes"], width=data.get("width", 1.0),
                   kwargs=data.get("kwargs"), custom_structure=bool(data.get("custom_structure")))


@dataclass
class Progress:
    """Where a run is: what a checkpoint stores besides the weights, optimizer and random states."""

    epoch: int = 0  # epochs done
    step: int = 0  # steps done in the current epoch (a checkpoint within an epoch)
    partial: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  # loss sum, correct, seen so far
    metrics: list[dict[str, Any]] = field(default_factory=list)  # one dict per epoch done
    best: dict[str, Any] | None = None  # the epoch best.pt holds: epoch, mode, val_acc, seed

    def snapshot(self) -> "Progress":
        """A copy that later steps of the run do not change."""
        return replace(self, partial=list(self.partial), metrics=list(self.metrics))


@dataclass(frozen=True, eq=False)  # eq: tensors have no single truth value; compare to_dict() contents instead
class Checkpoint:
    """One training checkpoint: the weights, how to rebuild their model, how they were trained, and the
    state a resume continues from (``optimizer``, ``scheduler``, ``rng``, ``progress``)."""

    model: ModelSpec
    state_dict: dict[str, Tensor]  # PW and buffers under the plain layer names
    train_config: dict[str, Any] = field(default_factory=dict)  # the run's TrainConfig.to_dict()
    was: dict[str, Any] | None = None  # WASConfig.to_dict(); None: trained without WAS
    bn_stats: str = "aom"  # "aom": BatchNorm re-estimated for PW; "running": mid-epoch, the training statistics
    dataset: dict[str, Any] | None = None  # name, data_dir, num_classes, mean, std, image_size of the training set
    progress: Progress = field(default_factory=Progress)
    optimizer: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None
    rng: dict[str, Any] | None = None  # the random states the trainer's rng_state() took
    versions: dict[str, str] | None = None  # wascompress, torch, ... that wrote it

    # --- what is on disk

    def to_dict(self) -> dict[str, Any]:
        """The dict written to disk (plain values and tensors only)."""
        p = self.progress
        return {"format": FORMAT, "version": VERSION, "model": self.model.to_dict(), "was": self.was,
                "state_dict": self.state_dict, "bn_stats": self.bn_stats, "optimizer": self.optimizer,
                "scheduler": self.scheduler, "epoch": p.epoch, "step_in_epoch": p.step, "partial": list(p.partial),
                "rng": self.rng, "train_config": self.train_config, "dataset": self.dataset,
                "metrics": list(p.metrics), "best": p.best, "versions": self.versions}

    @classmethod
    def from_dict(cls, data: Any, path: str | Path = "checkpoint") -> "Checkpoint":
        """The checkpoint in ``data`` (what ``torch.load`` read from ``path``); anything that is not one
        this wascompress reads is a one-line :class:`CheckpointError`."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise CheckpointError(f"{path} is not a wascompress checkpoint")
        if data.get("version") != VERSION:
            raise CheckpointError(f"{path} has checkpoint version {data.get('version')!r}; "
                                  f"this wascompress reads {VERSION}")
        for key in ("model", "state_dict"):
            if key not in data:
                raise CheckpointError(f"{path} is missing {key!r}")
        if not isinstance(data["model"], dict) or not {"name", "num_classes"} <= data["model"].keys():
            raise CheckpointError(f"{path} does not name its model (name and num_classes)")
        progress = Progress(epoch=data.get("epoch", 0), step=data.get("step_in_epoch", 0),
                            partial=list(data.get("partial") or [0.0, 0.0, 0.0]),
                            metrics=list(data.get("metrics") or []), best=data.get("best"))
        return cls(model=ModelSpec.from_dict(data["model"]), state_dict=data["state_dict"],
                   train_config=dict(data.get("train_config") or {}), was=data.get("was"),
                   bn_stats=data.get("bn_stats", "aom"), dataset=data.get("dataset"), progress=progress,
                   optimizer=data.get("optimizer"), scheduler=data.get("scheduler"), rng=data.get("rng"),
                   versions=data.get("versions"))

    def save(self, path: str | Path) -> None:
        """Write the checkpoint to ``path`` atomically."""
        atomic_torch_save(self.to_dict(), path)

    @classmethod
    def load(cls, path: str | Path) -> "Checkpoint":
        """Read and check a checkpoint file; any problem is a one-line :class:`CheckpointError`."""
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"checkpoint not found: {path}")
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise CheckpointError(f"{path} is not a readable checkpoint (truncated or corrupt?): {reason}") from None
        except Exception as err:  # weights_only refuses anything but tensors and plain values
            raise CheckpointError(f"{path} is not a wascompress checkpoint: {type(err).__name__}") from None
        return cls.from_dict(data, path)

    # --- what its readers ask

    @property
    def model_name(self) -> str:
        return self.model.name

    @property
    def was_config(self) -> WASConfig | None:
        """The WAS settings the run trained with (None: a plain model, which has no DOM)."""
        return WASConfig.from_dict(self.was) if self.was else None

    @property
    def resumable(self) -> bool:
        """Whether it holds the optimizer and random states a resume needs."""
        return self.optimizer is not None and self.rng is not None

    @property
    def dom_seeds(self) -> tuple[int, ...]:
        """The DOM seeds the run trained on purpose (``--dom-seed`` / ``--target-macs``), in order."""
        return tuple(int(s) for s in self.train_config.get("dom_seeds") or ())

    def fitted_key(self, seed: int) -> str | None:
        """The key of the fitted correction the run trained DOM seed ``seed`` with (``--fit-doms``), or None:
        that DOM runs the seed's own draws."""
        return trained_correction(seed, bool(self.train_config.get("fit_doms")), self.dom_seeds)

    def planned_doms(self) -> list[dict[str, Any]]:
        """The planned DOMs the checkpoint holds (``wascompress fit --plan``): per budget its ``target``,
        correction ``key``, predicted MAC ``ratio`` and ``plan`` (a DomPlan's dict); [] when none."""
        return list(self.train_config.get("dom_plans") or [])

    def trained_doms(self) -> list[dict[str, Any]]:
        """The DOMs the run trained for MAC budgets (see :func:`trained_doms`)."""
        return trained_doms(self.train_config.get("dom_budget"))

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(3, H, W)`` of the images the run trained on (runs recorded before ``image_size`` existed: the
        data set's, else 32x32)."""
        recorded = self.train_config.get("image_size")
        if recorded is None:
            recorded = (self.dataset or {}).get("image_size", DEFAULT_IMAGE_SIZE)
        height, width = image_size(recorded)
        return 3, height, width

    def build_model(self, with_was: bool = True) -> nn.Module:
        """The model with PW (and AOM BatchNorm statistics) loaded, WAS attached if it had WAS; eval mode."""
        spec = self.model
        if spec.custom_structure:
            raise CheckpointError(f"the checkpoint holds a custom structure built from {spec.name!r} (e.g. a pruned "
                                  "model); build that model yourself and load its state_dict")
        model = create_model(spec.name, num_classes=spec.num_classes, width=spec.width, kwargs=spec.kwargs)
        config = self.was_config
        state = self.state_dict
        if with_was and config is not None:
            apply_was_(model, config)
            add_slots_for_state_(model, state)  # the fitted DOMs' corrections
        else:
            state = without_corrections(state)
        try:
            load_plain_state_dict(model, state)
        except RuntimeError as err:
            raise CheckpointError(f"checkpoint weights do not fit model {spec.name!r}: "
                                  f"{str(err).splitlines()[0]}") from None
        return model.eval()


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and check a checkpoint file; any problem is a one-line :class:`CheckpointError`."""
    return Checkpoint.load(path)


def trained_doms(dom_budget: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The DOMs a run trained for MAC budgets (``--target-macs``), from the ``dom_budget`` its training
    configuration records: one dict per budget with its ``target``, ``seed``, pruned ``macs`` and ``ratio``
    of the AOM's, in the order given; [] when none."""
    budget = dom_budget or {}
    chosen = budget.get("chosen")
    if isinstance(chosen, dict):  # a run of an earlier wascompress: one budget
        return [{"target": budget["target"], **chosen}]
    return list(chosen or [])


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def state_sha256(state: dict[str, Tensor]) -> str:
    """sha256 of a state dict's names and tensor bytes, in order: the weights' identity (a checkpoint file's
    own sha256 also covers its timings)."""
    digest = hashlib.sha256()
    for name, tensor in state.items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
