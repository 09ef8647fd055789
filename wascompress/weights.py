"""Trained weights from a file: the start of "compress the model you already have".

A weights file is a wascompress checkpoint, a plain PyTorch ``state_dict`` saved with ``torch.save``
(``.pt`` / ``.pth``; also the usual wrappers ``{"state_dict": ...}``, ``{"model": ...}``, ``{"model_state_dict":
...}`` and DistributedDataParallel's ``module.`` prefix on every name), or a ``.safetensors`` file where the
``safetensors`` package is installed. Everything is read with ``torch.load(weights_only=True)``, so reading
never runs code. Names are matched strictly: a file that does not fit the model is one line naming the first
missing and unexpected names and the first shapes that differ.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from wascompress.checkpoint import FORMAT, Checkpoint, file_sha256
from wascompress.errors import CheckpointError
from wascompress.was import load_plain_state_dict, plain_state_dict
from wascompress.was.fitted import without_corrections

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")  # where trainers commonly put the weights
SHOWN = 3  # names listed per kind of mismatch


@dataclass(frozen=True)
class WeightsFile:
    """A weights file read: its tensors under the plain layer names, where they came from."""

    path: str
    sha256: str
    kind: str  # "wascompress-checkpoint", "state_dict" or "safetensors"
    state_dict: dict[str, Tensor]

    def source(self) -> dict[str, str]:
        """What a run records about its start weights."""
        return {"path": self.path, "sha256": self.sha256, "kind": self.kind}


def read_weights(path: str | Path) -> WeightsFile:
    """Read a weights file (see the module docstring); any problem is a one-line :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        state, kind = _read_safetensors(path), "safetensors"
    else:
        data = _torch_load(path)
        if isinstance(data, dict) and data.get("format") == FORMAT:
            # PW and buffers: a fitted DOM's corrections belong to that run's DOMs, not to the weights it starts
            state, kind = without_corrections(Checkpoint.from_dict(data, path).state_dict), "wascompress-checkpoint"
        else:
            state, kind = _unwrap(data, path), "state_dict"
    return WeightsFile(str(path.resolve()), file_sha256(path), kind, state)


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"{path} is not a readable weights file (truncated or corrupt?): {reason}") from None
    except Exception as err:  # weights_only refuses anything but tensors and plain values
        if "unsupported global" not in str(err).lower():  # not a pickle of objects at all
            raise CheckpointError(f"{path} is not a readable weights file: {type(err).__name__}") from None
        raise CheckpointError(f"{path} is not a tensor dict (a pickle of other objects); save model.state_dict()") from None


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise CheckpointError(f"{path}: reading .safetensors needs the safetensors package "
                              "(pip install safetensors)") from None
    try:
        return load_file(str(path), device="cpu")
    except Exception as err:  # safetensors raises its own error types for a bad header
        raise CheckpointError(f"{path} is not a readable safetensors file: {str(err).splitlines()[0]}") from None


def _unwrap(data: Any, path: Path) -> dict[str, Tensor]:
    """The tensor dict inside what ``torch.save`` wrote: the dict itself or one of the usual wrappers."""
    if isinstance(data, dict) and not _is_tensor_dict(data):
        for key in WRAPPER_KEYS:
            if isinstance(data.get(key), dict) and _is_tensor_dict(data[key]):
                data = data[key]
                break
    if not isinstance(data, dict) or not data or not _is_tensor_dict(data):
        raise CheckpointError(f"{path} is not a state_dict (a dict of names to tensors); got "
                              f"{type(data).__name__}{' with non-tensor values' if isinstance(data, dict) else ''}")
    if all(k.startswith("module.") for k in data):  # saved from a DistributedDataParallel wrapper
        data = {k[len("module."):]: v for k, v in data.items()}
    return dict(data)


def _is_tensor_dict(data: dict) -> bool:
    return all(isinstance(k, str) and isinstance(v, Tensor) for k, v in data.items())


def mismatch(model: nn.Module, state: dict[str, Tensor]) -> str | None:
    """What keeps ``state`` from loading into ``model`` strictly (None: it fits)."""
    expected = {k: tuple(v.shape) for k, v in plain_state_dict(model).items()}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} vs the model's {expected[k]}" for k in expected
              if k in state and tuple(state[k].shape) != expected[k]]
    parts = []
    for what, names in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
        if names:
            more = f" (+{len(names) - SHOWN} more)" if len(names) > SHOWN else ""
            parts.append(f"{len(names)} {what}: {', '.join(names[:SHOWN])}{more}")
    return "; ".join(parts) or None


def load_weights_(model: nn.Module, weights: WeightsFile, model_name: str = "the model") -> nn.Module:
    """Load ``weights`` into ``model`` (with or without WAS) strictly; a misfit is one line, nothing loaded."""
    problem = mismatch(model, weights.state_dict)
    if problem is not None:
        raise CheckpointError(f"{weights.path} does not fit {model_name}: {problem}")
    load_plain_state_dict(model, weights.state_dict)
    return model
