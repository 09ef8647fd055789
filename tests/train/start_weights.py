"""Start weights for the training tests: a "trained" tiny model saved the ways ``--init-from`` and
``--teacher FILE`` read (a plain state_dict file, a wascompress checkpoint)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from wascompress.checkpoint import Checkpoint, ModelSpec
from wascompress.models import create_model
from wascompress.was import WASConfig

WEIGHT_KINDS = ("state_dict", "wascompress-checkpoint")


def trained_tiny_model(seed: int) -> nn.Module:
    """A "trained" tiny model in eval mode: random weights, BatchNorm statistics moved off their defaults (so a
    model left in train mode, or one that never loaded them, answers differently)."""
    torch.manual_seed(seed)
    model = create_model("tiny", num_classes=10).train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, 3, 32, 32) * 2 + 0.5)
    return model.eval()


def save_weights(model: nn.Module, path: Path, kind: str) -> Path:
    """``model``'s weights saved at ``path`` as a plain state_dict or as a wascompress checkpoint (of a run
    with WAS, which a reader strips)."""
    if kind == "state_dict":
        torch.save(model.state_dict(), path)
    else:
        Checkpoint(model=ModelSpec("tiny", 10), state_dict=model.state_dict(),
                   was=WASConfig(crop=(0.4, 0.6)).to_dict()).save(path)
    return path
