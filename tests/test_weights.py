"""Trained weights from a file (``wascompress/weights.py``): what is read, and the one-line refusals."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from wascompress.checkpoint import Checkpoint, ModelSpec
from wascompress.errors import CheckpointError
from wascompress.models import create_model
from wascompress.was import WASConfig, apply_was_
from wascompress.weights import WeightsFile, load_weights_, mismatch, read_weights


def tiny(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model("tiny", num_classes=10).eval()


def assert_records_the_file(weights: WeightsFile, path: Path) -> None:
    """What a run records of its start weights names ``path`` and its sha256, computed here with hashlib over
    the file's bytes (not with the package's own ``file_sha256``). Catches a digest of anything else: the
    path, a part of the file, another file."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert weights.sha256 == digest
    assert weights.source() == {"path": str(path.resolve()), "sha256": digest, "kind": weights.kind}


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "model", "ddp"])
def test_state_dict_files_load_into_a_model_with_was(tmp_path, wrap):
    source = tiny(1)
    state = source.state_dict()
    saved = {"plain": state, "state_dict": {"state_dict": state, "epoch": 3}, "model": {"model": state},
             "ddp": {f"module.{k}": v for k, v in state.items()}}[wrap]
    torch.save(saved, tmp_path / "w.pth")
    weights = read_weights(tmp_path / "w.pth")
    assert weights.kind == "state_dict"
    assert_records_the_file(weights, tmp_path / "w.pth")
    target = tiny(2)
    apply_was_(target, WASConfig(crop=(0.4, 0.6)))
    load_weights_(target, weights)
    x = torch.randn(4, 3, 32, 32)
    assert torch.equal(target.eval()(x), source(x))  # AOM of the loaded PW is the source model, bit for bit


def test_safetensors_file(tmp_path):
    pytest.importorskip("safetensors")  # an optional dependency (the timm extra): skipped only where not installed
    import safetensors.torch  # installed, a broken import fails
    source = tiny(1)
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    safetensors.torch.save_file(state, str(tmp_path / "w.safetensors"))
    weights = read_weights(tmp_path / "w.safetensors")
    assert weights.kind == "safetensors"
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(load_weights_(tiny(2), weights).eval()(x), source(x))


def test_a_wascompress_checkpoint_is_read_as_its_plain_weights(tmp_path):
    """A checkpoint of a run with WAS gives its PW under the plain names, which load bit for bit. Catches a
    checkpoint read as a plain dict (its wrapper keys are no tensor dict) or its weights left out."""
    source = tiny(1)
    Checkpoint(model=ModelSpec("tiny", 10), state_dict=source.state_dict(),
               was=WASConfig(crop=(0.4, 0.6)).to_dict()).save(tmp_path / "run.pt")
    weights = read_weights(tmp_path / "run.pt")
    assert weights.kind == "wascompress-checkpoint"
    assert_records_the_file(weights, tmp_path / "run.pt")
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(load_weights_(tiny(2), weights).eval()(x), source(x))


def test_mismatch_names_missing_unexpected_and_shapes():
    state = tiny().state_dict()
    state.pop("fc.bias")
    state["extra.weight"] = torch.zeros(1)
    state["conv1.conv.weight"] = torch.zeros(4, 3, 3, 3)
    problem = mismatch(tiny(), state)
    assert problem == ("1 missing: fc.bias; 1 unexpected: extra.weight; "
                       "1 shape: conv1.conv.weight (4, 3, 3, 3) vs the model's (8, 3, 3, 3)")
    assert mismatch(tiny(), tiny(3).state_dict()) is None


def test_bad_files_are_one_line(tmp_path):
    with pytest.raises(CheckpointError, match="weights file not found"):
        read_weights(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="not a readable weights file"):
        read_weights(tmp_path / "junk.pt")
    torch.save({"a": 1, "b": "text"}, tmp_path / "numbers.pt")
    with pytest.raises(CheckpointError, match="is not a state_dict"):
        read_weights(tmp_path / "numbers.pt")
    torch.save(tiny(), tmp_path / "module.pt")  # a pickled module, not a tensor dict: weights_only refuses it
    with pytest.raises(CheckpointError, match="is not a tensor dict"):
        read_weights(tmp_path / "module.pt")
    torch.save(create_model("vgg16", num_classes=10, width=0.25).state_dict(), tmp_path / "vgg.pt")
    with pytest.raises(CheckpointError, match=r"does not fit tiny: \d+ missing: conv1.conv.weight"):
        load_weights_(tiny(), read_weights(tmp_path / "vgg.pt"), "tiny")
