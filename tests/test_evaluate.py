"""Evaluation (``wascompress/evaluate.py``): top-1 counts in eval mode, the same at any batch size and
summed over ranks; a mode's accuracy after re-estimating BatchNorm for it on fixed calibration batches,
the model's draws given back afterwards."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from tests.export.runs import one_torch_thread  # noqa: F401  (autouse: tiny models run faster on one thread)
from wascompress.data import ImageSet
from wascompress.errors import ConfigError
from wascompress.evaluate import Accuracy, calibration_batches, count_correct, mode_accuracy
from wascompress.models import create_model
from wascompress.was import WASConfig, apply_was_, dom_draws, freeze_dom_, recalibrate_bn_, use_dom_, was_layers

def images(n: int, seed: int) -> ImageSet:
    """``n`` random images of 10 classes (the synthetic task computes its statistics on 2,000: slower)."""
    generator = torch.Generator().manual_seed(seed)
    return ImageSet(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=generator),
                    torch.randint(0, 10, (n,), generator=generator), tuple(f"c{k}" for k in range(10)),
                    (0.5, 0.5, 0.5), (0.29, 0.29, 0.29))


TEST = images(60, seed=0)
TRAIN = images(120, seed=1)


class Constant(torch.nn.Module):
    """Predicts class ``k`` for every image (and has a BatchNorm, so eval mode matters to others)."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k
        self.bn = torch.nn.BatchNorm2d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(torch.full((x.shape[0],), self.k), 10).float() + 0 * self.bn(x).sum()


@pytest.fixture
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("tiny", num_classes=10)
    apply_was_(model, WASConfig(crop=(0.4, 0.6), filter=(0.5, 1.0)))
    recalibrate_bn_(model, calibration_batches(TRAIN, 2, 32))
    return model


def test_accuracy_top1():
    assert Accuracy(3, 4).top1 == 0.75 and Accuracy(0, 5).top1 == 0.0
    assert math.isnan(Accuracy(0, 0).top1)  # nothing evaluated is not 0 %


def test_count_correct_counts_top1_in_eval_mode():
    for k in (0, 7):
        accuracy = count_correct(Constant(k).train(), TEST, batch_size=16)
        assert accuracy == Accuracy(int((TEST.labels == k).sum()), len(TEST))
    constant = Constant(0).train()
    count_correct(constant, TEST)
    assert not constant.training


def test_count_correct_does_not_depend_on_the_batch_size(model):
    model.train()  # count_correct puts it in eval mode: BatchNorm uses its statistics, not the batch's
    counts = {count_correct(model, TEST, batch_size=b) for b in (7, 32, 256)}
    assert len(counts) == 1 and next(iter(counts)).total == len(TEST)


def test_ranks_count_disjoint_shares_that_sum_to_the_whole(model):
    whole = count_correct(model, TEST)
    shares = [count_correct(model, TEST, rank=r, world_size=3) for r in range(3)]
    assert [s.total for s in shares] == [20, 20, 20]
    assert sum(s.correct for s in shares) == whole.correct


def test_transform_runs_on_every_batch():
    seen = []

    def flip(images: torch.Tensor) -> torch.Tensor:
        seen.append(images.shape[0])
        return images.flip(-1)

    assert count_correct(Constant(3), TEST, batch_size=25, transform=flip).total == len(TEST)
    assert seen == [25, 25, 10]


def test_mode_accuracy_recalibrates_for_the_mode_and_gives_the_draws_back(model):
    calibration = calibration_batches(TRAIN, 2, 32, seed=1)
    before = {name: layer.draws for name, layer in was_layers(model).items()}
    accuracy = mode_accuracy(model, TEST, mode="dom", seed=3, calibration=calibration)
    assert {name: layer.draws for name, layer in was_layers(model).items()} == before  # back in AOM
    # the same as the DOM frozen into a plain model, its BatchNorm re-estimated on the same batches
    frozen = copy.deepcopy(model)
    use_dom_(frozen, 3)
    recalibrate_bn_(frozen, calibration)
    expected = count_correct(freeze_dom_(frozen, 3), TEST)
    assert accuracy == expected
    # the model keeps the DOM's BatchNorm statistics afterwards
    frozen_bns = {n: m for n, m in frozen.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    bns = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert bns.keys() == frozen_bns.keys() and bns
    for name, bn in bns.items():
        torch.testing.assert_close(bn.running_mean, frozen_bns[name].running_mean, msg=name)
        torch.testing.assert_close(bn.running_var, frozen_bns[name].running_var, msg=name)


def test_mode_accuracy_without_calibration_keeps_the_statistics(model):
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    aom = mode_accuracy(model, TEST, mode="aom")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in stats.items())
    assert aom == count_correct(model, TEST)
    use_dom_(model, 5)  # a DOM set before: given back too
    mode_accuracy(model, TEST, mode="aom")
    assert {n: layer.draws for n, layer in was_layers(model).items()} == dom_draws(model, 5)


def test_mode_accuracy_refuses_a_bad_mode(model):
    with pytest.raises(ConfigError, match="DOM mode needs a seed"):
        mode_accuracy(model, TEST, mode="dom")
    with pytest.raises(ConfigError, match="mode must be 'aom' or 'dom'"):
        mode_accuracy(model, TEST, mode="best")


def test_calibration_batches_are_fixed_by_their_seed():
    first = calibration_batches(TRAIN, 3, 32, seed=4)
    assert [b.shape for b in first] == [torch.Size([32, 3, 32, 32])] * 3 and first[0].dtype == torch.float32
    assert all(torch.equal(a, b) for a, b in zip(first, calibration_batches(TRAIN, 3, 32, seed=4)))
    assert not torch.equal(first[0], calibration_batches(TRAIN, 1, 32, seed=5)[0])
    assert abs(float(torch.cat(first).mean())) < 0.5  # normalised with the set's statistics
