"""``train --init-from ... --fit-doms``: each DOM starts fitted to the start model, trains with its
correction, and is what ``export --target-macs`` writes; a killed run resumes bit-identically."""

from __future__ import annotations

import json

import onnx
import pytest
import torch

from tests.conftest import assert_one_line_error, assert_resume_after_kill_is_bit_identical
from tests.train.test_init_from import trained_tiny  # noqa: F401  (a fixture)
from wascompress.checkpoint import load_checkpoint
from wascompress.data.run_data import checkpoint_calibration, checkpoint_splits
from wascompress.evaluate import mode_accuracy
from wascompress.models import create_model
from wascompress.train.config import TrainConfig
from wascompress.train.distributed import init_distributed
from wascompress.train.trainer import set_up
from wascompress.was import WASConfig, use_pw_, was_layers
from wascompress.was.fitted import seed_key

TINY = dict(model="tiny", dataset="synthetic", lr=0.05, batch_size=64, bn_batches=2, channels_last=False)
CROP = WASConfig(crop=(0.4, 0.6))


@pytest.fixture
def start_file(trained_tiny):
    """A "trained" tiny model's state_dict file (BatchNorm statistics of its own)."""
    return trained_tiny[1]


def test_set_up_fits_each_dom_seed_before_training_and_leaves_the_aom_alone(start_file):
    """Catches --fit-doms doing nothing (corrections zero), fitting after the optimizer exists (the
    corrections would not train), and a fit that changes the AOM."""
    config = TrainConfig(**TINY, epochs=1, limit_train=300, was=CROP, dom_seeds=(2, 5), init_from=str(start_file),
                         fit_doms=True, fit_images=128)
    ctx = init_distributed("cpu")
    setup = set_up(config, ctx, None)
    ctx.close()
    source = create_model("tiny", num_classes=10).eval()
    source.load_state_dict(torch.load(start_file, weights_only=True))
    use_pw_(setup.model)
    x = torch.randn(4, 3, 32, 32)
    assert torch.equal(setup.model.eval()(x), source(x))
    for seed in (2, 5):
        corrections = [layer.fitted[seed_key(seed)] for layer in was_layers(setup.model).values()]
        assert all(c.requires_grad and c.abs().sum() > 0 for c in corrections)
        record = setup.config.dom_budget["fits"][str(seed)]
        assert record["mean_error_fitted"] < record["mean_error_plain"]
        assert record["stored_numbers"] == sum(c.numel() for c in corrections)


def test_fitted_doms_train_and_export_as_fitted(tmp_path, start_file, capsys):
    """Catches an export --target-macs that writes the seed's own draws instead of the run's fitted DOM, a
    checkpoint that loses the corrections, and an evaluation of the unfitted DOM during training."""
    from wascompress.cli import main

    run = tmp_path / "run"
    code = main(["train", "--out", str(run), "--model", "tiny", "--dataset", "synthetic", "--epochs", "1",
                 "--limit-train", "300", "--batch-size", "64", "--bn-batches", "2", "--no-channels-last",
                 "--crop", "0.2", "1.0", "--was-shared", "--target-macs", "0.75", "0.5", "--search-seeds", "8",
                 "--init-from", str(start_file), "--fit-doms", "--fit-images", "128"])
    assert code == 0, capsys.readouterr().err
    best = load_checkpoint(run / "best.pt")
    seeds = best.dom_seeds
    model = best.build_model()
    for seed in seeds:
        assert best.fitted_key(seed) == seed_key(seed)
        assert all(layer.fitted[seed_key(seed)].abs().sum() > 0 for layer in was_layers(model).values())
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    splits = checkpoint_splits(best)
    calibration = checkpoint_calibration(best, splits)
    expected = mode_accuracy(best.build_model(), splits.val, mode="dom", seed=seeds[0], fitted=seed_key(seeds[0]),
                             calibration=calibration).top1
    assert metrics[-1]["val_acc_doms"][str(seeds[0])] == pytest.approx(expected)
    capsys.readouterr()
    out = tmp_path / "dom.onnx"
    assert main(["export", str(run / "best.pt"), "--target-macs", "0.5", "--out", str(out)]) == 0
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["fitted"] == seed_key(report["seed"]) and report["verification"]["top1_identical"]
    raw = tmp_path / "raw.onnx"
    assert main(["export", str(run / "best.pt"), "--mode", "dom", "--seed", str(report["seed"]), "--out", str(raw)]) == 0
    assert "exports the seed's own draws" in capsys.readouterr().err
    assert json.loads(raw.with_suffix(".json").read_text())["fitted"] is None
    fitted_weights = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(out).graph.initializer}
    raw_weights = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(raw).graph.initializer}
    assert fitted_weights.keys() == raw_weights.keys()  # the same graph ...
    assert any((fitted_weights[k] != raw_weights[k]).any() for k in fitted_weights)  # ... other weights


def test_fit_doms_needs_a_start_and_a_dom(tmp_path, run_main):
    result = run_main("train", "--out", str(tmp_path / "run"), "--model", "tiny", "--dataset", "synthetic",
                      "--crop", "0.4", "0.6", "--dom-seed", "1", "--fit-doms")
    assert_one_line_error(result, "--fit-doms fits trained DOMs to the trained weights: it needs --init-from")
    assert not (tmp_path / "run").exists()


def test_sigkill_then_resume_is_bit_identical_with_fitted_doms(tmp_path, start_file):
    """Catches a resume that rebuilds the model without the corrections (the checkpoint would not load, or
    the optimizer would skip them) or refits them over the trained ones."""
    args = ["train", "--model", "tiny", "--dataset", "synthetic", "--epochs", "2", "--batch-size", "32", "--lr",
            "0.05", "--crop", "0.4", "0.6", "--bn-batches", "2", "--limit-train", "480", "--save-every", "4",
            "--dom-seed", "2", "--no-channels-last", "--init-from", str(start_file), "--fit-doms",
            "--fit-images", "128"]
    resumed = assert_resume_after_kill_is_bit_identical(args, tmp_path)
    # the corrections were trained and kept; a resume that refitted them over the trained ones would end
    # with other corrections than the uninterrupted run's, which the helper compares bit for bit
    assert any(".fitted." in k for k in resumed.state_dict)
