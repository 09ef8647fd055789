"""Checkpoints: one file holding Plain Weights, the WAS configuration and everything a resume needs.

A checkpoint is a dict of plain Python values and tensors, written atomically and read with
``torch.load(weights_only=True)``, so loading one never runs code. Its ``state_dict`` holds PW under the
plain layer names with the BatchNorm statistics re-estimated for PW (AOM), so a stripped model loads it
directly; :func:`build_model` rebuilds the model, WAS attached, from the checkpoint alone.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from wascompress.errors import CheckpointError
from wascompress.fileio import atomic_torch_save
from wascompress.models import create_model
from wascompress.was import WASConfig, apply_was_, load_plain_state_dict

FORMAT = "wascompress-checkpoint"
VERSION = 1


def save_checkpoint(checkpoint: dict[str, Any], path: str | Path) -> None:
    """Write a checkpoint dict (as `TrainingSession.checkpoint` builds it) atomically."""
    atomic_torch_save({"format": FORMAT, "version": VERSION, **checkpoint}, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and check a checkpoint; any problem is a one-line :class:`CheckpointError`."""
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
    return check_checkpoint(data, path)


def check_checkpoint(data: Any, path: str | Path) -> dict[str, Any]:
    """``data`` (what ``torch.load`` read from ``path``) if it is a checkpoint this wascompress reads; else a
    one-line :class:`CheckpointError`."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a wascompress checkpoint")
    if data.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {data.get('version')!r}; this wascompress reads {VERSION}")
    for key in ("model", "state_dict"):
        if key not in data:
            raise CheckpointError(f"{path} is missing {key!r}")
    return data


def checkpoint_was_config(checkpoint: dict[str, Any]) -> WASConfig | None:
    was = checkpoint.get("was")
    return WASConfig.from_dict(was) if was else None


def build_model(checkpoint: dict[str, Any], with_was: bool = True) -> nn.Module:
    """The checkpoint's model with PW (and AOM BatchNorm statistics) loaded, WAS attached if it had WAS."""
    spec = checkpoint["model"]
    if spec.get("custom_structure"):
        raise CheckpointError(f"the checkpoint holds a custom structure built from {spec['name']!r} (e.g. a pruned "
                              "model); build that model yourself and load its state_dict")
    model = create_model(spec["name"], num_classes=spec["num_classes"], width=spec["width"], kwargs=spec.get("kwargs"))
    config = checkpoint_was_config(checkpoint)
    if with_was and config is not None:
        apply_was_(model, config)
    try:
        load_plain_state_dict(model, checkpoint["state_dict"])
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint weights do not fit model {spec['name']!r}: {str(err).splitlines()[0]}") from None
    return model.eval()


def trained_doms(dom_budget: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The DOMs a run trained for MAC budgets (``--dom-target-macs``), from the ``dom_budget`` its training
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
