"""The sandwich a configuration asks for (``wascompress/train/sandwich.py``): the frozen teacher is the start
model (``--teacher init``) or the file named (``--teacher FILE``), in eval mode and without gradient, and the
step the trainer builds from it trains on the loss the documentation gives."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.export.runs import one_torch_thread  # noqa: F401  (autouse: tiny models run faster on one thread)
from tests.train.start_weights import WEIGHT_KINDS, save_weights, trained_tiny_model
from wascompress.checkpoint import Checkpoint, ModelSpec
from wascompress.errors import CheckpointError
from wascompress.export.budget import seed_costs
from wascompress.models import create_model
from wascompress.train.config import TrainConfig
from wascompress.train.distributed import init_distributed
from wascompress.train.run_folder import RunFolder
from wascompress.train.sandwich import choose_dom_seeds, describe_step, frozen_teacher, sandwich_for
from wascompress.train.step import sandwich_step
from wascompress.train.trainer import TrainingSession, set_up
from wascompress.was import WASConfig, apply_was_, dom_draws, use_dom_, use_pw_, was_layers
from wascompress.weights import read_weights

DOM_SEED = 3
BASE = dict(model="tiny", dataset="synthetic", limit_train=200, batch_size=64, bn_batches=2,
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
    config = TrainConfig(**{"channels_last": False, **BASE, **settings}, init_from=str(start_path),
                         teacher="init" if teacher == "init" else str(other_path))
    return config, start if teacher == "init" else other


@pytest.mark.parametrize("kind", WEIGHT_KINDS)
@pytest.mark.parametrize("teacher", ["init", "file"])
def test_frozen_teacher_is_the_named_model_in_eval_mode_without_gradient(tmp_path, kind, teacher):
    """The teacher answers as the start model (``init``) or the named file's model does, bit for bit, with
    every module in eval mode, no parameter requiring gradient and no WAS (in channels-last too). Catches a
    teacher built from a model's random initial weights instead of the file, one left in train mode
    (BatchNorm would update and answer from the batch), one whose parameters still require gradient, and
    (found by mutmut) a channels-last run's teacher lost."""
    config, expected = start_and_teacher(tmp_path, kind, teacher, channels_last=kind == "state_dict")
    model = frozen_teacher(config, read_weights(config.init_from), 10, torch.device("cpu"))
    assert not any(module.training for module in model.modules())
    assert not any(p.requires_grad for p in model.parameters())
    assert not was_layers(model)
    images, _ = images_and_labels()
    with torch.no_grad():
        if config.channels_last:  # other kernels: the same answer but for rounding
            torch.testing.assert_close(model(images.contiguous(memory_format=torch.channels_last)), expected(images))
        else:
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



def test_a_checkpoint_teacher_brings_its_architecture_and_a_state_dict_must_fit(tmp_path):
    """``--teacher FILE``: a wascompress checkpoint is rebuilt as its own model (here a narrower tiny than the
    one trained), a state_dict is loaded into the trained model's architecture and class count, and one that
    does not fit is one line naming the model. Catches (found by mutmut) a checkpoint loaded into the trained
    architecture, the class count dropped, and the model's name left out of the error."""
    torch.manual_seed(3)
    narrow = create_model("tiny", num_classes=10, width=0.5).eval()
    Checkpoint(model=ModelSpec("tiny", 10, width=0.5), state_dict=narrow.state_dict()).save(tmp_path / "narrow.pt")
    five = create_model("tiny", num_classes=5).eval()
    torch.save(five.state_dict(), tmp_path / "five.pt")
    torch.save(create_model("vgg16", num_classes=10, width=0.25).state_dict(), tmp_path / "vgg.pt")
    images, _ = images_and_labels()
    for path, classes, expected in ((tmp_path / "narrow.pt", 10, narrow), (tmp_path / "five.pt", 5, five)):
        teacher = frozen_teacher(TrainConfig(**BASE, teacher=str(path)), None, classes, torch.device("cpu"))
        with torch.no_grad():
            assert torch.equal(teacher(images), expected(images)), path.name
    with pytest.raises(CheckpointError, match="vgg.pt does not fit tiny: "):
        frozen_teacher(TrainConfig(**BASE, teacher=str(tmp_path / "vgg.pt")), None, 10, torch.device("cpu"))


@pytest.mark.parametrize("settings,passes,distill,in_place", [
    ({}, 2, False, False),  # AOM + the DOM, on the labels
    ({"distill": True}, 2, True, True),
    ({"train_pw": False}, 1, False, False),  # fine-tuning a frozen DOM: no AOM pass
    ({"was_samples": 2}, 4, False, False),
])
def test_sandwich_for_builds_the_passes_and_distillation_the_config_asks_for(settings, passes, distill, in_place):
    """Catches (found by mutmut) distillation switched on without --distill or a teacher, and train_pw
    ignored."""
    config = TrainConfig(**BASE, **settings)
    torch.manual_seed(0)
    model = create_model("tiny", num_classes=10)
    apply_was_(model, config.was)
    sandwich = sandwich_for(config, model)
    assert sandwich is not None and sandwich.passes == passes and sandwich.teacher is None
    assert (sandwich.distill is not None, sandwich.in_place) == (distill, in_place)
    assert sandwich.train_pw == config.train_pw and sandwich.fixed == (dom_draws(model, DOM_SEED),)
    assert sandwich_for(TrainConfig(**{**BASE, "dom_seeds": ()}), model) is None  # the paper's step


@pytest.mark.parametrize("settings,described", [
    ({"was": None, "dom_seeds": ()}, "plain"),
    ({"dom_seeds": ()}, f"one random SW ({BASE['was'].describe()})"),
    ({}, "AOM on the labels + DOM seed 3"),
    ({"train_pw": False, "was_samples": 1, "was_warmup": 1, "epochs": 2},
     "DOM seed 3 + 1 random SW; PW alone for the first 1 epochs"),
    ({"distill": True, "distill_weight": 0.7, "distill_temperature": 2.0},
     "AOM on the labels + DOM seed 3, distilled from the AOM forward (weight 0.7, T 2)"),
    ({"teacher": "t.pt"}, "AOM on the labels + DOM seed 3, distilled from frozen t.pt (weight 0.5, T 1)"),
    ({"teacher": "init", "init_from": "start.pt", "distill": True},
     "AOM on the labels + DOM seed 3, distilled from the frozen start weights and the AOM forward (weight 0.5, T 1)"),
])
def test_describe_step_names_every_pass_and_teacher(settings, described):
    """The one line config.json records as the run's step. Catches a pass, a teacher or a setting left out
    of it or misnamed (mutmut's mutants of describe_step, untested by this file before)."""
    config = TrainConfig(**{**BASE, **settings})
    teacher = nn.Identity() if config.teacher is not None else None
    model = create_model("tiny", num_classes=10)
    if config.was is not None:
        apply_was_(model, config.was)
    assert describe_step(config, sandwich_for(config, model, teacher)) == described


def test_choose_dom_seeds_takes_the_most_macs_within_each_budget():
    """One seed per budget, the one with the most MACs at or under it among ``search_seeds``, recorded with
    every seed tried; two budgets that pick the same seed train it once. Catches (mutmut's mutants of
    choose_dom_seeds, untested by this file before) the cheapest seed taken, budgets out of order, seeds
    repeated and the record left out."""
    config = TrainConfig(**{**BASE, "dom_seeds": (), "was": WASConfig(crop=(0.2, 1.0), shared=True)},
                         target_macs=(0.9, 0.75, 0.5), search_seeds=8)
    torch.manual_seed(0)
    model = create_model("tiny", num_classes=10)
    apply_was_(model, config.was)
    costs = seed_costs(model, range(8), (3, 32, 32))
    chosen = choose_dom_seeds(config, model, (3, 32, 32))
    expected = [max((c for c in costs if c.ratio <= target), key=lambda c: (c.ratio, -c.seed))
                for target in (0.9, 0.75, 0.5)]
    assert chosen.dom_budget == {"chosen": [{"target": t, **c.as_dict()} for t, c in zip((0.9, 0.75, 0.5), expected)],
                                 "tried": [c.as_dict() for c in costs]}
    assert chosen.dom_seeds == tuple(dict.fromkeys(c.seed for c in expected))
    same = choose_dom_seeds(replace(config, target_macs=(0.9, 0.95)), model, (3, 32, 32))
    assert len(same.dom_seeds) == len({c["seed"] for c in same.dom_budget["chosen"]})
