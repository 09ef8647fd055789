"""One WAS training step (``wascompress/train/step.py``): the paper's step trains PW through one drawn SW; a
sandwich step sums the gradients of its passes (AOM, fixed DOMs, random SW, distillation) in PW, updates
once, and leaves the model in AOM."""

from __future__ import annotations

import contextlib
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.export.runs import one_torch_thread  # noqa: F401  (autouse: tiny models run faster on one thread)
from wascompress.models import create_model
from wascompress.train.step import Distillation, Sandwich, sandwich_step, training_step
from wascompress.was import WASConfig, apply_was_, dom_draws, resample_, set_draws_, use_dom_, use_pw_, was_layers

N = 8  # images per batch: a step of the tiny model in float64 takes milliseconds


def tiny_was(config: WASConfig = WASConfig(crop=(0.4, 0.6), translate=0.3)) -> nn.Module:
    torch.manual_seed(0)
    model = create_model("tiny", num_classes=10)
    apply_was_(model, config)
    return model.double().train()


def batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(N, 3, 32, 32, dtype=torch.float64, generator=generator),
            torch.randint(0, 10, (N,), generator=generator))


def frozen_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    """SGD with lr 0: the step runs in full and leaves its gradients to be read."""
    return torch.optim.SGD(model.parameters(), lr=0.0)


def grads(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() if p.grad is not None else torch.zeros_like(p) for name, p in model.named_parameters()}


def pass_grads(model: nn.Module, draws, images, labels, loss_of=F.cross_entropy) -> dict[str, torch.Tensor]:
    """The gradient of one forward of a copy of ``model`` with ``draws`` (None: PW) on its own."""
    copy_ = copy.deepcopy(model)
    set_draws_(copy_, draws) if draws is not None else use_pw_(copy_)
    loss_of(copy_(images), labels).backward()
    return grads(copy_)


def assert_same_grads(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-9, atol=1e-12, msg=name)


def random_draw(model: nn.Module, seed: int) -> dict:
    """The SW a step's generator seeded ``seed`` draws: each WAS layer in module order from one generator."""
    generator = torch.Generator().manual_seed(seed)
    return {name: layer.sample(generator) for name, layer in was_layers(model).items()}


PW = ".parametrizations.weight.original"


# ---------------------------------------------------------------------------------------------------
# The paper's step


def test_training_step_trains_pw_through_the_sw_it_draws():
    model = tiny_was(WASConfig(crop=(0.4, 0.6)))
    images, labels = batch()
    reference = copy.deepcopy(model)
    loss, correct = training_step(model, images, labels, frozen_optimizer(model), torch.Generator().manual_seed(3))
    resample_(reference, torch.Generator().manual_seed(3))  # the same draw
    logits = reference(images)
    F.cross_entropy(logits, labels).backward()
    assert_same_grads(grads(model), grads(reference))
    torch.testing.assert_close(loss, F.cross_entropy(logits, labels).detach() * N)  # summed over the batch
    assert int(correct) == int((logits.argmax(1) == labels).sum())
    # the gradient reaches PW through the crop: the taps inside each layer's window, and only those
    for name, layer in was_layers(model).items():
        pw = dict(model.named_parameters())[name + PW]
        inside = layer(torch.ones_like(pw)) != 0
        assert pw.grad[~inside].abs().max() == 0 and pw.grad[inside].abs().sum() > 0, name


def test_training_step_updates_pw_once_and_without_was_trains_the_plain_model():
    torch.manual_seed(0)
    model = create_model("tiny", num_classes=10).double().train()
    images, labels = batch()
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    expected = pass_grads(model, None, images, labels)
    training_step(model, images, labels, torch.optim.SGD(model.parameters(), lr=0.1), None)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), before[name] - 0.1 * expected[name], rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------------------------------
# Sandwich steps


def test_sandwich_gradient_is_the_sum_over_its_passes_and_one_update():
    model = tiny_was()
    images, labels = batch()
    dom = dom_draws(model, 5)
    sandwich = Sandwich(fixed=(dom,), random_samples=1)
    assert sandwich.passes == 3
    parts = [pass_grads(model, draws, images, labels) for draws in (None, dom, random_draw(model, 7))]
    expected = {name: sum(part[name] for part in parts) for name in parts[0]}
    aom = copy.deepcopy(model)
    use_pw_(aom)
    with torch.no_grad():
        aom_logits = aom(images)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss, correct = sandwich_step(model, images, labels, optimizer, torch.Generator().manual_seed(7), sandwich)
    assert_same_grads(grads(model), expected)
    for name, p in model.named_parameters():  # one SGD step on the summed gradient
        torch.testing.assert_close(p.detach(), before[name] - 0.1 * expected[name], rtol=1e-9, atol=1e-12)
    # the step reports its first pass, the AOM's: summed loss and number correct
    torch.testing.assert_close(loss, F.cross_entropy(aom_logits, labels) * N)
    assert int(correct) == int((aom_logits.argmax(1) == labels).sum())


def test_a_fixed_dom_pass_trains_exactly_that_dom():
    model = tiny_was()
    images, labels = batch()
    only_dom = Sandwich(fixed=(dom_draws(model, 4),), random_samples=0, train_pw=False)
    assert only_dom.passes == 1
    loss, _ = sandwich_step(model, images, labels, frozen_optimizer(model), None, only_dom)  # no random draw
    reference = copy.deepcopy(model)
    use_dom_(reference, 4)
    logits = reference(images)
    F.cross_entropy(logits, labels).backward()
    assert_same_grads(grads(model), grads(reference))
    torch.testing.assert_close(loss, F.cross_entropy(logits, labels).detach() * N)
    other = copy.deepcopy(model)
    other.zero_grad(set_to_none=True)
    sandwich_step(other, images, labels, frozen_optimizer(other), None,
                  Sandwich(fixed=(dom_draws(model, 9),), random_samples=0, train_pw=False))
    assert any(not torch.allclose(a, b) for a, b in zip(grads(other).values(), grads(reference).values()))


def test_no_sw_is_left_attached_after_a_sandwich_step():
    model = tiny_was()
    images, labels = batch()
    sandwich_step(model, images, labels, frozen_optimizer(model), torch.Generator().manual_seed(2),
                  Sandwich(fixed=(dom_draws(model, 1),), random_samples=2))
    assert all(layer.draws is None for layer in was_layers(model).values())  # AOM: every layer runs PW
    plain = copy.deepcopy(model).eval()
    use_dom_(plain, 1)
    use_pw_(plain)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(images), plain(images))


class FakeDDP(nn.Module):
    """What sandwich_step sees of DistributedDataParallel: ``module`` and a ``no_sync`` context."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        self.unsynced_backwards = 0
        self.inside = False

    @contextlib.contextmanager
    def no_sync(self):
        self.inside = True
        yield
        self.inside = False
        self.unsynced_backwards += 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)


def test_a_wrapped_model_syncs_gradients_only_with_the_last_pass():
    wrapped = FakeDDP(tiny_was())
    images, labels = batch()
    sandwich_step(wrapped, images, labels, frozen_optimizer(wrapped), torch.Generator().manual_seed(2),
                  Sandwich(fixed=(dom_draws(wrapped.module, 1),), random_samples=1))
    assert wrapped.unsynced_backwards == 2  # passes 1 and 2 of 3; the third all-reduces the sum
    assert all(layer.draws is None for layer in was_layers(wrapped.module).values())


# ---------------------------------------------------------------------------------------------------
# Distillation


def test_distillation_loss_mixes_cross_entropy_and_the_tempered_kl():
    generator = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(4, 10, generator=generator), torch.randn(4, 10, generator=generator)
    labels = torch.tensor([0, 3, 5, 9])
    t = 2.0
    kl = F.kl_div(F.log_softmax(student / t, 1), F.softmax(teacher / t, 1), reduction="batchmean") * t * t
    ce = F.cross_entropy(student, labels)
    torch.testing.assert_close(Distillation(weight=0.0, temperature=t).loss(student, labels, teacher), ce)
    torch.testing.assert_close(Distillation(weight=1.0, temperature=t).loss(student, labels, teacher), kl)
    torch.testing.assert_close(Distillation(weight=0.25, temperature=t).loss(student, labels, teacher),
                               0.75 * ce + 0.25 * kl)
    assert float(Distillation(weight=1.0).loss(student, labels, student.clone())) == pytest.approx(0, abs=1e-7)
    two = Distillation(weight=1.0, temperature=t).loss(student, labels, teacher, student.clone())
    torch.testing.assert_close(two, kl / 2)  # averaged over the teachers
    half = student.detach().half().requires_grad_()  # mixed-precision logits are computed in float32
    assert Distillation(weight=1.0).loss(half, labels, teacher.half()).dtype == torch.float32


def test_distillation_teacher_gets_no_gradient():
    student = torch.randn(4, 10, requires_grad=True)
    teacher = torch.randn(4, 10, requires_grad=True)
    Distillation(weight=1.0).loss(student, torch.zeros(4, dtype=torch.long), teacher).backward()
    assert student.grad is not None and teacher.grad is None


def test_in_place_distillation_adds_the_kl_to_the_aom_forward_to_each_sw_pass():
    model = tiny_was()
    images, labels = batch()
    dom = dom_draws(model, 1)
    distill = Distillation(weight=0.5, temperature=2.0)
    sandwich_step(model, images, labels, frozen_optimizer(model), None,
                  Sandwich(fixed=(dom,), random_samples=0, distill=distill))
    aom = copy.deepcopy(model)
    use_pw_(aom)
    with torch.no_grad():
        aom_logits = aom(images)
    expected = pass_grads(model, None, images, labels)  # the AOM pass learns from the labels alone
    dom_part = pass_grads(model, dom, images, labels, lambda logits, y: distill.loss(logits, y, aom_logits))
    assert_same_grads(grads(model), {name: expected[name] + dom_part[name] for name in expected})
    # without the distillation term the gradient differs: the term is really there
    plain = copy.deepcopy(model)
    plain.zero_grad(set_to_none=True)
    sandwich_step(plain, images, labels, frozen_optimizer(plain), None, Sandwich(fixed=(dom,), random_samples=0))
    assert any(not torch.allclose(a, b) for a, b in zip(grads(plain).values(), grads(model).values()))


def test_a_frozen_teacher_runs_once_per_batch_without_gradient():
    model = tiny_was()
    images, labels = batch()
    torch.manual_seed(5)
    teacher_model = create_model("tiny", num_classes=10).double().eval()
    calls = []

    def teacher(x: torch.Tensor) -> torch.Tensor:
        calls.append(torch.is_grad_enabled())
        return teacher_model(x)

    dom = dom_draws(model, 1)
    distill = Distillation(weight=1.0)
    before = {k: v.clone() for k, v in teacher_model.state_dict().items()}
    sandwich_step(model, images, labels, frozen_optimizer(model), torch.Generator().manual_seed(0),
                  Sandwich(fixed=(dom,), random_samples=1, distill=distill, teacher=teacher, in_place=False))
    assert calls == [False]  # once, for the three passes, under no_grad
    assert all(p.grad is None for p in teacher_model.parameters())
    # the step does not train the teacher it is given (this test put it in eval mode itself; that the trainer's
    # teacher is in eval mode is tests/train/test_sandwich.py's to check)
    assert all(torch.equal(v, before[k]) for k, v in teacher_model.state_dict().items())
    with torch.no_grad():
        target = teacher_model(images)
    from_teacher = lambda logits, y: distill.loss(logits, y, target)  # noqa: E731
    parts = [pass_grads(model, None, images, labels),  # PW on the labels, the SW passes on the teacher
             pass_grads(model, dom, images, labels, from_teacher),
             pass_grads(model, random_draw(model, 0), images, labels, from_teacher)]
    assert_same_grads(grads(model), {name: sum(p[name] for p in parts) for name in parts[0]})
