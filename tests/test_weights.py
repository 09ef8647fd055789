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
    # more than SHOWN names of a kind: the first ones and how many more; exactly SHOWN: no "(+0 more)"
    # (catches, found by mutmut, the count or the comparison off by one)
    three = {**tiny().state_dict(), "x.a": torch.zeros(1), "x.b": torch.zeros(1), "x.c": torch.zeros(1)}
    assert mismatch(tiny(), three) == "3 unexpected: x.a, x.b, x.c"
    fewer = {k: v for k, v in tiny().state_dict().items() if not k.startswith("conv1.")}
    missing = [k for k in tiny().state_dict() if k.startswith("conv1.")]
    assert len(missing) > 3
    assert mismatch(tiny(), fewer) == f"{len(missing)} missing: {', '.join(missing[:3])} (+{len(missing) - 3} more)"


def test_bad_files_are_one_line(tmp_path):
    """Each refusal is a CheckpointError naming the file and what is wrong with it. Catches (mutmut) a path or
    reason left out of the message, a list or an empty dict taken for a state_dict, and a load error without
    the model's name."""
    with pytest.raises(CheckpointError, match="weights file not found"):
        read_weights(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match=f"^{tmp_path / 'junk.pt'} is not a readable weights file: \\w+Error$"):
        read_weights(tmp_path / "junk.pt")
    torch.save(tiny().state_dict(), tmp_path / "whole.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "whole.pt").read_bytes()[:2000])
    with pytest.raises(CheckpointError) as caught:
        read_weights(tmp_path / "cut.pt")
    prefix = f"{tmp_path / 'cut.pt'} is not a readable weights file (truncated or corrupt?): "
    assert str(caught.value).startswith(prefix) and str(caught.value)[len(prefix):] not in ("", "None")
    for name, data, got in [("numbers.pt", {"a": 1, "b": "text"}, "dict with non-tensor values"),
                            ("list.pt", [torch.zeros(1)], "list"), ("empty.pt", {}, "dict with non-tensor values")]:
        torch.save(data, tmp_path / name)
        with pytest.raises(CheckpointError) as caught:
            read_weights(tmp_path / name)
        assert str(caught.value) == f"{tmp_path / name} is not a state_dict (a dict of names to tensors); got {got}"
    torch.save({"format": "wascompress-checkpoint", "version": 99}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match=f"^{tmp_path / 'future.pt'} has checkpoint version 99"):
        read_weights(tmp_path / "future.pt")
    torch.save(tiny(), tmp_path / "module.pt")  # a pickled module, not a tensor dict: weights_only refuses it
    with pytest.raises(CheckpointError, match="is not a tensor dict"):
        read_weights(tmp_path / "module.pt")
    torch.save(create_model("vgg16", num_classes=10, width=0.25).state_dict(), tmp_path / "vgg.pt")
    with pytest.raises(CheckpointError, match=r"does not fit tiny: \d+ missing: conv1.conv.weight"):
        load_weights_(tiny(), read_weights(tmp_path / "vgg.pt"), "tiny")
    with pytest.raises(CheckpointError, match="does not fit the model: "):
        load_weights_(tiny(), read_weights(tmp_path / "vgg.pt"))


def test_a_corrupt_safetensors_file_is_one_line(tmp_path):
    """Catches (mutmut) the file's name or safetensors' reason left out of the message."""
    pytest.importorskip("safetensors")
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00not json")
    with pytest.raises(CheckpointError) as caught:
        read_weights(path)
    prefix = f"{path} is not a readable safetensors file: "
    assert str(caught.value).startswith(prefix) and str(caught.value)[len(prefix):] not in ("", "None")
