"""Trained runs shared by the export tests (tests/export and tests/cli/test_export_cli.py): each is
trained once per test session, in process, into a folder of ``tmp_path_factory``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from wascompress.train.config import TrainConfig
from wascompress.train.trainer import train
from wascompress.was import WASConfig

WAS = WASConfig(crop=(0.4, 0.6), translate=0.3)
WAS_RUN = TrainConfig(model="tiny", dataset="synthetic", epochs=3, lr=0.05, batch_size=64, bn_batches=2, was=WAS)
BASELINE_RUN = TrainConfig(model="tiny", dataset="synthetic", epochs=1, lr=0.05, batch_size=64, bn_batches=2,
                           limit_train=300, was=None)

_trained: dict[Any, Path] = {}


def trained_run(tmp_path_factory, config: TrainConfig) -> Path:
    """The run folder of ``config``, trained on first use."""
    key = repr(config)
    if key not in _trained:
        run = tmp_path_factory.mktemp("export-runs") / "run"
        train(config, run)
        _trained[key] = run
    return _trained[key]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread: these models are tiny, and on a shared 2-core machine a second thread that
    waits for a busy core slows training and export down several times (measured: 5 s against 34 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
