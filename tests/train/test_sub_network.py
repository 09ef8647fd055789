"""Training the deployed DOM on purpose: sandwich steps, in-place distillation, MAC budgets, resume."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import assert_one_line_error, assert_resumed_where_killed, kill_midway, run_cli
from wascompress.checkpoint import load_checkpoint
from wascompress.data import load_dataset
from wascompress.errors import ConfigError
from wascompress.evaluate import calibration_batches
from wascompress.train.config import TrainConfig
from wascompress.train.trainer import train
from wascompress.was import WASConfig, recalibrate_bn_, use_dom_

CROP = WASConfig(crop=(0.4, 0.6))
TINY = dict(model="tiny", dataset="synthetic", lr=0.05, batch_size=64, bn_batches=2)


def dom_loss(run, seed: int) -> float:
    checkpoint = load_checkpoint(run / "last.pt")
    model = checkpoint.build_model()
    train_set = load_dataset("synthetic", None, train=True, seed=0)
    batches = calibration_batches(train_set, 4, 64, seed=1)
    test = load_dataset("synthetic", None, train=False, seed=0)
    use_dom_(model, seed)
    recalibrate_bn_(model, batches)
    with torch.no_grad():
        images = (test.images[:512].float() / 255 - torch.tensor(test.mean).view(1, 3, 1, 1)) / torch.tensor(
            test.std).view(1, 3, 1, 1)
        return float(F.cross_entropy(model(images), test.labels[:512].long()))


def test_trained_dom_seed_ends_with_a_lower_dom_loss(tmp_path):
    seed = 3
    common = dict(**TINY, epochs=3, limit_train=1500, was=CROP)
    train(TrainConfig(**common), tmp_path / "paper")
    train(TrainConfig(**common, dom_seeds=(seed,), was_samples=0, train_pw=True), tmp_path / "sandwich")
    assert dom_loss(tmp_path / "sandwich", seed) < dom_loss(tmp_path / "paper", seed)


def test_target_macs_picks_a_seed_under_the_budget(tmp_path):
    config = TrainConfig(**TINY, epochs=1, limit_train=300, was=CROP, target_macs=0.5, search_seeds=8,
                         distill=True)
    results = train(config, tmp_path / "run")
    stored = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    budget = stored["dom_budget"]
    (chosen,) = budget["chosen"]
    assert chosen["target"] == 0.5 and chosen["ratio"] <= 0.5 and len(budget["tried"]) == 8
    assert max(t["ratio"] for t in budget["tried"] if t["ratio"] <= 0.5) == chosen["ratio"]
    assert stored["dom_seeds"] == [chosen["seed"]] == [results["dom_seed"]]
    assert results["budgets"] == [{"target": 0.5, "seed": chosen["seed"], "mac_ratio": chosen["ratio"],
                                   "macs": chosen["macs"], "test_acc": results["test_acc_dom"]}]
    with pytest.raises(ConfigError, match="no DOM seed of the 8 tried reaches 0.1"):
        train(TrainConfig(**TINY, epochs=1, limit_train=300, was=CROP, target_macs=0.1, search_seeds=8),
              tmp_path / "unreachable")
    assert not (tmp_path / "unreachable").exists()


def test_a_fixed_dom_trains_without_random_draws_by_default():
    assert TrainConfig(**TINY, was=CROP, dom_seeds=(3,)).was_samples == 0
    assert TrainConfig(**TINY, was=CROP, target_macs=0.5).was_samples == 0
    assert TrainConfig(**TINY, was=CROP, dom_seeds=(3,), was_samples=2).was_samples == 2
    assert TrainConfig(**TINY, was=CROP).was_samples == 1 and TrainConfig(**TINY, was=CROP, distill=True).was_samples == 1
    assert TrainConfig(**TINY).was_samples == 1 and not TrainConfig(**TINY, was=CROP).sandwich  # the paper's step


def test_target_macs_alone_is_a_sub_network_to_train(tmp_path):
    """--target-macs (random draws by default none): AOM + the seed the budget picks, two passes per step."""
    config = TrainConfig(**TINY, epochs=1, limit_train=300, was=CROP, target_macs=0.5, search_seeds=8,
                         distill=True)
    results = train(config, tmp_path / "run")
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert stored["config"]["dom_seeds"] == [results["dom_seed"]]
    assert stored["step"] == f"AOM on the labels + DOM seed {results['dom_seed']}, distilled from the AOM forward (weight 0.5, T 1)"
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["passes_per_step"] == 2


SANDWICH_ARGS = ["train", "--model", "tiny", "--dataset", "synthetic", "--epochs", "3", "--batch-size", "32",
                 "--lr", "0.05", "--crop", "0.4", "0.6", "--translate", "0.3", "--augment", "--bn-batches", "2",
                 "--limit-train", "800", "--save-every", "4", "--dom-seed", "2", "5", "--was-samples", "1",
                 "--distill", "--distill-weight", "0.7", "--distill-temperature", "2", "--was-warmup", "1",
                 "--dom-align", "--transform-layers", "translate:conv3.*", "translate:res*",
                 "--no-channels-last"]  # fixed: left to the timing probe, two runs could choose differently


def state_of(path):
    return load_checkpoint(path).state_dict


def test_sigkill_then_resume_is_bit_identical_with_sandwich_options(tmp_path):
    """With sandwich steps, distillation and a warm-up epoch: the resumed run continues at the killed
    checkpoint's epoch and step, runs only the steps left and ends with the uninterrupted weights. Catches
    a resume that restarts from epoch 1 (deterministic, so the weights alone would still match)."""
    reference = run_cli(*SANDWICH_ARGS, "--out", str(tmp_path / "ref"))
    assert reference.returncode == 0, reference.stderr
    metrics = [json.loads(line) for line in (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == ["plain", "sandwich", "sandwich"]
    assert [m["passes_per_step"] for m in metrics] == [1, 4, 4] and all(m["step_time_s"] > 0 for m in metrics)
    assert "s/step (sandwich, 4 passes)" in reference.stderr
    run = tmp_path / "killed"
    kill_midway([*SANDWICH_ARGS, "--out", str(run)], run / "metrics.jsonl", 0.5)  # past the warm-up epoch
    killed_at = load_checkpoint(run / "last.pt")
    assert (killed_at.progress.epoch, killed_at.progress.step) < (3, 0), "the run finished before it was killed"
    resumed = run_cli(*SANDWICH_ARGS, "--out", str(run), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert_resumed_where_killed(resumed, run, killed_at, tmp_path / "ref")
    a, b = state_of(tmp_path / "ref" / "last.pt"), state_of(run / "last.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    stored = json.loads((run / "config.json").read_text())
    assert stored["config"]["dom_seeds"] == [2, 5] and stored["config"]["eval_seed"] == 2
    assert stored["config"]["was"]["dom_align"] is True
    assert stored["config"]["was"]["transform_layers"] == ["translate:conv3.*", "translate:res*"]
    assert stored["step"].startswith("AOM on the labels + DOM seed 2 + DOM seed 5 + 1 random SW, distilled")


@pytest.mark.parametrize("args,fragment", [
    (["--crop", "0.4", "0.6", "--dom-seed"], "expected at least one argument"),
    (["--crop", "0.4", "0.6", "--dom-seed", "-1"], "non-negative integer"),
    (["--crop", "0.4", "0.6", "--dom-seed", "x"], "invalid int value"),
    (["--crop", "0.4", "0.6", "--target-macs", "0"], "(0, 1]"),
    (["--crop", "0.4", "0.6", "--target-macs", "1.5"], "(0, 1]"),
    (["--distill"], "--distill needs WAS settings"),
    (["--dom-seed", "1"], "--dom-seed needs WAS settings"),
    (["--dom-align"], "--dom-align needs WAS settings"),
    (["--crop", "0.4", "0.6", "--transform-layers", "filter:res*"], "'filter', which is not an enabled transform"),
    (["--crop", "0.4", "0.6", "--transform-layers", "crop:nothing*"], "crop:nothing* matches no WAS layer"),
    (["--crop", "0.4", "0.6", "--dom-seed", "1", "--target-macs", "0.5"], "not both"),
    (["--crop", "0.4", "0.6", "--was-samples", "0"], "must train some SW"),
    (["--crop", "0.4", "0.6", "--was-warmup", "5", "--epochs", "5"], "was-warmup 5 leaves no WAS epoch"),
])
def test_bad_sub_network_input(tmp_path, run_main, args, fragment):
    result = run_main("train", "--model", "tiny", "--dataset", "synthetic", "--out", str(tmp_path / "r"),
                      "--epochs", "2", *args)
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "r").exists()
