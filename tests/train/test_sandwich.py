"""The sandwich a configuration asks for (``wascompress/train/sandwich.py``): the frozen teacher is the start
model (``--teacher init``) or the file named (``--teacher FILE``), in eval mode and without gradient, and the
step the trainer builds from it trains on the loss the documentation gives."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.export.runs import one_torch_thread  # noqa: F401  (autouse: tiny models run faster on one thread)
from tests.train.start_weights import WEIGHT_KINDS, save_weights, trained_tiny_model
from wascompress.train.config import TrainConfig
from wascompress.train.distributed import init_distributed
from wascompress.train.run_folder import RunFolder
from wascompress.train.sandwich import frozen_teacher
from wascompress.train.step import sandwich_step
from wascompress.train.trainer import TrainingSession, set_up
from wascompress.was import WASConfig, use_dom_, use_pw_, was_layers
from wascompress.weights import read_weights

DOM_SEED = 3
BASE = dict(model="tiny", dataset="synthetic", limit_train=200, batch_size=64, bn_batches=2, channels_last=False,
            was=WASConfig(crop=(0.4, 0.6)), dom_seeds=(DOM_SEED,))


def images_and_labels(n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return (torch.randn(n, 3, 32, 32, generator=generator) * 2 + 0.5,
            torch.randint(0, 10, (n,), generator=generator))


def start_and_teacher(tmp_path, kind: str, teacher: str, **settings) -> tuple[TrainConfig, nn.Module]:
    """A configuration (``settings`` added) starting from one "trained" model saved as ``kind``, ``teacher``
    "init" (that model) or "file" (another, saved as ``kind`` too), and the model its teacher must be."""
    start, other = trained_tiny_model(11), trained_tiny_model(12)
    start_path = save_weights(start, tmp_path / "start.pt", kind)
    other_path = save_weights(other, tmp_path / "teacher.pt", kind)
    config = TrainConfig(**BASE, **settings, init_from=str(start_path),
                         teacher="init" if teacher == "init" else str(other_path))
    return config, start if teacher == "init" else other


@pytest.mark.parametrize("kind", WEIGHT_KINDS)
@pytest.mark.parametrize("teacher", ["init", "file"])
def test_frozen_teacher_is_the_named_model_in_eval_mode_without_gradient(tmp_path, kind, teacher):
    """The teacher answers as the start model (``init``) or the named file's model does, bit for bit, with
    every module in eval mode, no parameter requiring gradient and no WAS. Catches a teacher built from a
    model's random initial weights instead of the file, one left in train mode (BatchNorm would update and
    answer from the batch) and one whose parameters still require gradient."""
    config, expected = start_and_teacher(tmp_path, kind, teacher)
    model = frozen_teacher(config, read_weights(config.init_from), 10, torch.device("cpu"))
    assert not any(module.training for module in model.modules())
    assert not any(p.requires_grad for p in model.parameters())
    assert not was_layers(model)
    images, _ = images_and_labels()
    with torch.no_grad():
        assert torch.equal(model(images), expected(images))


def documented_gradient(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, teacher: nn.Module,
                        config: TrainConfig) -> dict[str, torch.Tensor]:
    """PW's gradient of the step the README and ``Distillation`` describe, written out here: the AOM forward on
    the labels; the DOM forward on (1 - w) CE(labels) + w T² KL(teacher_T || DOM_T), the KL averaged over the
    frozen teacher's eval-mode logits and (with ``--distill``) the AOM forward's detached ones."""
    w, t = config.distill_weight, config.distill_temperature
    aom, dom = copy.deepcopy(model), copy.deepcopy(model)
    use_pw_(aom)
    aom_logits = aom(images)
    F.cross_entropy(aom_logits, labels).backward()
    with torch.no_grad():
        targets = [teacher.eval()(images)] + ([aom_logits.detach()] if config.distill else [])
    use_dom_(dom, DOM_SEED)
    student = dom(images)
    kl = sum(F.kl_div(F.log_softmax(student / t, 1), F.softmax(target / t, 1), reduction="batchmean")
             for target in targets) / len(targets)
    ((1 - w) * F.cross_entropy(student, labels) + w * t * t * kl).backward()
    return {name: a.grad + b.grad for (name, a), (_, b) in zip(aom.named_parameters(), dom.named_parameters())}


@pytest.mark.parametrize("teacher,distill", [("init", True), ("file", True), ("init", False)])
def test_the_trainers_step_learns_from_the_frozen_teacher_as_documented(tmp_path, teacher, distill):
    """The sandwich step the trainer builds for ``--teacher init|FILE`` (with and without ``--distill``) gives
    PW the gradient of the documented loss (:func:`documented_gradient`), from the teacher model computed here
    independently, and leaves the teacher's weights and statistics as they were. Catches a teacher with
    random weights or in train mode, the in-place AOM teacher dropped beside a frozen one (or added without
    ``--distill``), the AOM forward distilled, and a wrong weight or temperature."""
    config, expected_teacher = start_and_teacher(tmp_path, "state_dict", teacher, distill=distill,
                                                 distill_weight=0.3, distill_temperature=2.0)
    ctx = init_distributed("cpu")
    try:
        session = TrainingSession(set_up(config, ctx, None), RunFolder(tmp_path / "run"), ctx)
    finally:
        ctx.close()
    model, sandwich = session.core.double().train(), session.sandwich
    assert sandwich is not None and sandwich.teacher is not None
    sandwich.teacher.double()
    teacher_state = copy.deepcopy(sandwich.teacher.state_dict())
    images, labels = images_and_labels()
    images = images.double()
    expected = documented_gradient(model, images, labels, expected_teacher.double(), config)
    sandwich_step(model, images, labels, torch.optim.SGD(model.parameters(), lr=0.0), None, sandwich)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, expected[name], rtol=1e-9, atol=1e-12, msg=name)
    assert all(torch.equal(v, teacher_state[k]) for k, v in sandwich.teacher.state_dict().items())

