"""An ONNX file as a classifier: ``model(images)`` runs the file on ONNX Runtime and returns its logits.

So that everything that measures a PyTorch classifier (accuracy, accuracy under shifted inputs) measures
an exported file the same way: the FP32 or INT8 export itself, or any user's ONNX classifier with one
image input. Inference only (no gradients); batches are split to fit a graph that fixes its batch size.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from wascompress.errors import ConfigError
from wascompress.onnx_session import make_session
from wascompress.profile.onnx_cost import load_model, model_input


class OnnxClassifier(nn.Module):
    """``path`` on ONNX Runtime (``provider``, ``threads`` intra-op threads; 0: its default)."""

    def __init__(self, path: str | Path, provider: str = "CPUExecutionProvider", threads: int = 0) -> None:
        super().__init__()
        proto = load_model(path)
        self.path = Path(path)
        self.input = model_input(proto, str(path))
        self.metadata = {p.key: p.value for p in proto.metadata_props}
        self.session = make_session(path, provider, threads)

    @property
    def image_size(self) -> tuple[int, int] | None:
        """(H, W) of the image input if the graph fixes them (None: any size)."""
        dims = self.input.dims
        if len(dims) != 4:
            raise ConfigError(f"{self.path} takes input {list(dims)}; a classifier of images takes (N, C, H, W)")
        height, width = dims[2:]
        return (height, width) if isinstance(height, int) and isinstance(width, int) else None

    def wascompress_metadata(self, key: str) -> Any:
        """A value the wascompress exporter recorded (decoded from JSON where it is JSON), or None."""
        value = self.metadata.get(f"wascompress.{key}")
        if value is None:
            return None
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value

    def forward(self, images: Tensor) -> Tensor:
        batch = np.ascontiguousarray(images.detach().cpu().numpy().astype(self.input.dtype))
        fixed = self.input.fixed_batch
        if fixed is None or len(batch) == fixed:
            return torch.from_numpy(self._run(batch))
        outputs = []
        for start in range(0, len(batch), fixed):
            chunk = batch[start:start + fixed]
            pad = fixed - len(chunk)
            if pad:  # the graph takes exactly ``fixed`` images: fill the last run with copies
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)])
            outputs.append(self._run(chunk)[:fixed - pad])
        return torch.from_numpy(np.concatenate(outputs))

    def _run(self, batch: np.ndarray) -> np.ndarray:
        logits = self.session.run(None, {self.input.name: batch})[0]
        if logits.ndim != 2:
            raise ConfigError(f"{self.path} returns shape {list(logits.shape)}; a classifier returns (N, classes)")
        return logits
