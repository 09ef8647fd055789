"""Choosing the training memory format: the probe leaves the model alone, the choice is recorded and kept."""

from __future__ import annotations

import json

import torch

from tests.train.test_trainer import TINY, assert_same_state, state_of
from wascompress.models import create_model
from wascompress.train.config import TrainConfig
from wascompress.train.memory_format import FormatProbe, probe_memory_format
from wascompress.train.trainer import train
from wascompress.was import WASConfig, apply_was_


def test_probe_times_both_formats_and_leaves_the_model_untouched():
    torch.manual_seed(0)
    model = create_model("tiny")
    apply_was_(model, WASConfig(crop=(0.4, 0.6)))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    probe = probe_memory_format(model, torch.randn(48, 3, 32, 32), num_classes=10, repeats=2)
    assert probe.contiguous_s > 0 and probe.channels_last_s > 0
    assert probe.ratio == probe.channels_last_s / probe.contiguous_s
    assert probe.channels_last == (probe.ratio < 1)
    after = model.state_dict()
    for key, value in before.items():  # weights and BatchNorm statistics (num_batches_tracked too)
        assert torch.equal(value, after[key]), key
    assert all(p.grad is None for p in model.parameters())
    assert all(p.is_contiguous() for p in model.parameters())


def test_format_probe_prefers_the_faster():
    assert FormatProbe(contiguous_s=2.0, channels_last_s=1.0).channels_last
    assert not FormatProbe(contiguous_s=1.0, channels_last_s=1.5).channels_last


def test_automatic_choice_is_recorded_and_a_resume_keeps_it(tmp_path):
    config = TrainConfig(**TINY, epochs=1, limit_train=300)
    assert config.channels_last is None
    train(config, tmp_path / "run")
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    chosen = stored["config"]["channels_last"]
    assert isinstance(chosen, bool) and stored["channels_last"] == chosen
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["train_config"]["channels_last"] == chosen


def test_channels_last_run_trains_and_resumes_bit_identically(tmp_path):
    settings = dict(TINY, limit_train=300, channels_last=True, was=WASConfig(crop=(0.4, 0.6)))
    train(TrainConfig(**settings, epochs=2), tmp_path / "straight")
    train(TrainConfig(**settings, epochs=1), tmp_path / "resumed")
    results = train(TrainConfig(**{**settings, "channels_last": None}, epochs=2), tmp_path / "resumed", resume=True)
    assert results["test_acc_aom"] > 0
    assert json.loads((tmp_path / "resumed" / "config.json").read_text())["channels_last"] is True
    assert_same_state(state_of(tmp_path / "straight" / "last.pt"), state_of(tmp_path / "resumed" / "last.pt"))


class Uncopyable(torch.nn.Module):
    """A user's model that refuses to be deep-copied (it holds something that cannot be)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = create_model("tiny")

    def forward(self, x):
        return self.net(x)

    def __deepcopy__(self, memo):
        raise TypeError("cannot copy this model")


def test_a_model_the_probe_cannot_copy_trains_contiguous(tmp_path):
    config = TrainConfig(**TINY, epochs=1, limit_train=200)
    train(config, tmp_path / "run", model=Uncopyable())
    assert json.loads((tmp_path / "run" / "config.json").read_text())["channels_last"] is False
