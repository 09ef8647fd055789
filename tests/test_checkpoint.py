"""Checkpoints: what is saved loads back equal, the file format stays what earlier runs wrote, and a file
that is not a checkpoint this wascompress reads is one clear line."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.conftest import REPO
from wascompress.checkpoint import (
    FORMAT,
    VERSION,
    Checkpoint,
    ModelSpec,
    Progress,
    load_checkpoint,
)
from wascompress.errors import CheckpointError
from wascompress.models import create_model
from wascompress.was import WASConfig, apply_was_, plain_state_dict, strip_was_
from wascompress.weights import read_weights

WAS = WASConfig(crop=(0.4, 0.6), translate=0.3)
# the keys a checkpoint has held on disk since the model spec was added (format version 1)
DISK_KEYS = {"format", "version", "model", "was", "state_dict", "bn_stats", "optimizer", "scheduler", "epoch",
             "step_in_epoch", "partial", "rng", "train_config", "dataset", "metrics", "best", "versions"}


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """Equal values, tensors equal element for element (and in dtype), at any depth."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), (where, a.keys() if isinstance(a, dict) else a)
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for index, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{index}]")
    else:
        assert a == b, (where, a, b)


def tiny_checkpoint() -> Checkpoint:
    """A checkpoint as the trainer writes one mid-run: WAS, optimizer and scheduler state, two epochs done."""
    torch.manual_seed(3)
    model = create_model("tiny", num_classes=10)
    apply_was_(model, WAS)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=4)
    model(torch.randn(4, 3, 32, 32)).sum().backward()
    optimizer.step()
    scheduler.step()
    metrics = [{"epoch": 1, "val_acc_aom": 0.25}, {"epoch": 2, "val_acc_aom": 0.5}]
    return Checkpoint(
        model=ModelSpec("tiny", 10, 1.0), state_dict=plain_state_dict(model),
        train_config={"model": "tiny", "dataset": "synthetic", "seed": 0, "image_size": [32, 32], "dom_seeds": [2, 5],
                      "dom_budget": {"chosen": [{"target": 0.5, "seed": 2, "macs": 10, "ratio": 0.45}]}},
        was=WAS.to_dict(), bn_stats="running", dataset={"name": "synthetic", "image_size": [32, 32]},
        progress=Progress(epoch=2, step=3, partial=[1.5, 7.0, 12.0], metrics=metrics,
                          best={"epoch": 2, "mode": "aom", "val_acc": 0.5, "seed": None}),
        optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
        rng={"was": torch.Generator().manual_seed(1).get_state(), "torch": torch.get_rng_state()},
        versions={"wascompress": "test"},
    )


def test_save_then_load_gives_back_every_field(tmp_path):
    saved = tiny_checkpoint()
    saved.save(tmp_path / "c.pt")
    loaded = load_checkpoint(tmp_path / "c.pt")
    assert_same(loaded.to_dict(), saved.to_dict())
    assert loaded.model == saved.model and loaded.progress == saved.progress and loaded.resumable
    assert (loaded.model_name, loaded.was_config, loaded.dom_seeds) == ("tiny", WAS, (2, 5))
    assert loaded.trained_doms() == [{"target": 0.5, "seed": 2, "macs": 10, "ratio": 0.45}]
    x = torch.randn(2, 3, 32, 32)
    reference = strip_was_(create_model("tiny", num_classes=10))
    reference.load_state_dict(saved.state_dict)
    assert torch.equal(strip_was_(loaded.build_model()).eval()(x), reference.eval()(x))


def test_the_file_is_a_dict_of_plain_values_and_tensors(tmp_path):
    """On disk: the keys earlier wascompress versions wrote, readable with weights_only=True."""
    tiny_checkpoint().save(tmp_path / "c.pt")
    data = torch.load(tmp_path / "c.pt", weights_only=True)
    assert set(data) == DISK_KEYS and (data["format"], data["version"]) == (FORMAT, VERSION)
    assert data["model"] == {"name": "tiny", "num_classes": 10, "width": 1.0}  # absent kwargs stay absent
    assert (data["epoch"], data["step_in_epoch"], data["partial"]) == (2, 3, [1.5, 7.0, 12.0])
    spec = ModelSpec("timm:resnet26d", 10, kwargs={"drop_rate": 0.1}, custom_structure=True)
    assert ModelSpec.from_dict(spec.to_dict()) == spec


def old_checkpoint_dict() -> dict[str, Any]:
    """A checkpoint dict exactly as ``TrainingSession.checkpoint`` built it before the Checkpoint class."""
    torch.manual_seed(0)
    model = create_model("tiny", num_classes=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    return {
        "format": "wascompress-checkpoint", "version": 1,
        "model": {"name": "tiny", "num_classes": 10, "width": 1.0},
        "was": None, "state_dict": plain_state_dict(model), "bn_stats": "aom",
        "optimizer": optimizer.state_dict(), "scheduler": None,
        "epoch": 1, "step_in_epoch": 0, "partial": [0.0, 0.0, 0.0],
        "rng": {"was": None, "torch": torch.get_rng_state()},
        "train_config": {"model": "tiny", "dataset": "synthetic", "seed": 0, "dom_seeds": []},
        "dataset": {"name": "synthetic", "data_dir": None, "num_classes": 10, "mean": [0.5] * 3, "std": [0.25] * 3},
        "metrics": [{"epoch": 1, "val_acc_aom": 0.3}], "best": {"epoch": 1, "mode": "aom", "val_acc": 0.3, "seed": None},
        "versions": {"wascompress": "0.1.0"},
    }


def test_a_checkpoint_written_before_the_class_loads_and_saves_unchanged(tmp_path):
    old = old_checkpoint_dict()
    torch.save(old, tmp_path / "old.pt")
    checkpoint = load_checkpoint(tmp_path / "old.pt")
    assert checkpoint.was_config is None and checkpoint.dom_seeds == () and checkpoint.trained_doms() == []
    assert checkpoint.progress.best["val_acc"] == 0.3 and checkpoint.resumable
    assert checkpoint.input_shape == (3, 32, 32)  # recorded before image_size existed: 32x32
    assert_same(checkpoint.to_dict(), old)
    assert isinstance(checkpoint.build_model(), torch.nn.Module)


def test_the_committed_trained_baseline_loads(tmp_path):
    """The study's resnet18 start weights (a real run's best.pt) read as they were written."""
    path = next(REPO.glob("*/*/*/start/resnet18/seed0/best.pt"), None)
    assert path is not None, "the committed resnet18 start checkpoint is gone"
    raw = torch.load(path, map_location="cpu", weights_only=True)
    checkpoint = load_checkpoint(path)
    assert_same(checkpoint.to_dict(), raw)
    assert checkpoint.model == ModelSpec("resnet18", 10, 0.25) and checkpoint.progress.epoch == 11
    assert checkpoint.input_shape == (3, 32, 32) and checkpoint.was_config is None
    assert read_weights(path).state_dict.keys() == checkpoint.state_dict.keys()


def test_input_shape_of_runs_recorded_before_image_size():
    data = old_checkpoint_dict()
    assert Checkpoint.from_dict({**data, "dataset": {"image_size": 40}}, "x").input_shape == (3, 40, 40)
    with_size = {**data, "train_config": {**data["train_config"], "image_size": [24, 40]}}
    assert Checkpoint.from_dict(with_size, "x").input_shape == (3, 24, 40)


def one_line_error(path: Path) -> str:
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    return message


def test_another_version_is_one_line_naming_both(tmp_path):
    torch.save({**old_checkpoint_dict(), "version": 2}, tmp_path / "v2.pt")
    assert "checkpoint version 2; this wascompress reads 1" in one_line_error(tmp_path / "v2.pt")


def test_files_that_are_not_checkpoints(tmp_path):
    torch.save({"conv.weight": torch.zeros(2)}, tmp_path / "state.pt")  # a plain state_dict
    assert one_line_error(tmp_path / "state.pt").endswith("is not a wascompress checkpoint")
    (tmp_path / "notes.txt").write_text("hello")
    assert "is not a wascompress checkpoint" in one_line_error(tmp_path / "notes.txt")
    assert "checkpoint not found" in one_line_error(tmp_path / "missing.pt")
    torch.save({k: v for k, v in old_checkpoint_dict().items() if k != "model"}, tmp_path / "no-model.pt")
    assert "is missing 'model'" in one_line_error(tmp_path / "no-model.pt")


def test_a_truncated_file_is_one_line(tmp_path):
    tiny_checkpoint().save(tmp_path / "c.pt")
    data = (tmp_path / "c.pt").read_bytes()
    (tmp_path / "half.pt").write_bytes(data[: len(data) // 2])
    assert "truncated or corrupt" in one_line_error(tmp_path / "half.pt")


def test_weights_only_is_not_resumable_and_a_custom_structure_is_not_rebuilt(tmp_path):
    checkpoint = replace(tiny_checkpoint(), optimizer=None, model=ModelSpec("tiny", 10, custom_structure=True))
    checkpoint.save(tmp_path / "c.pt")
    loaded = load_checkpoint(tmp_path / "c.pt")
    assert not loaded.resumable and loaded.model.custom_structure
    with pytest.raises(CheckpointError, match="custom structure"):
        loaded.build_model()
