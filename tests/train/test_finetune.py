"""Fine-tuning a frozen DOM: zeros stay zero, the export keeps its shape, bad input is refused."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import assert_one_line_error, run_cli
from wascompress.checkpoint import load_checkpoint
from wascompress.errors import CheckpointError
from wascompress.export.exporter import ExportConfig, mode_model
from wascompress.export.from_checkpoint import export_checkpoint
from wascompress.train.config import TrainConfig
from wascompress.train.finetune import finetune, finetune_config
from wascompress.train.trainer import train
from wascompress.was import WASConfig

TINY = dict(model="tiny", dataset="synthetic", lr=0.05, batch_size=64, bn_batches=2, limit_train=600)
SEED = 4


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    run = tmp_path_factory.mktemp("finetune") / "source"
    train(TrainConfig(**TINY, epochs=2, was=WASConfig(crop=(0.4, 0.6), translate=0.3, filter=(0.5, 0.9))), run)
    return run


def frozen_dom(checkpoint_path, seed):
    model = load_checkpoint(checkpoint_path).build_model()
    return mode_model(model, ExportConfig(mode="dom", seed=seed, recalibrate_bn=False), None)


def test_finetuning_keeps_every_zero_and_the_export_shape(tmp_path, source):
    config = finetune_config(source / "best.pt", SEED, 2, distill=True)
    assert config.lr == pytest.approx(0.005) and config.dom_seeds == (SEED,) and not config.train_pw
    results = finetune(config, tmp_path / "ft")
    before, after = frozen_dom(source / "best.pt", SEED), frozen_dom(tmp_path / "ft" / "best.pt", SEED)
    changed = 0
    for (name, a), (_, b) in zip(before.named_parameters(), after.named_parameters()):
        if a.dim() == 4:
            assert torch.equal(a == 0, b == 0), name  # the same zeros, exactly (and no new ones)
            changed += int(not torch.equal(a, b))
    assert changed > 0  # the non-zero weights did train
    assert results["dom_seed"] == SEED and results["test_acc_dom"] > 0
    source_export = export_checkpoint(source / "best.pt", tmp_path / "a.onnx", ExportConfig(mode="dom", seed=SEED))
    tuned_export = export_checkpoint(tmp_path / "ft" / "best.pt", tmp_path / "b.onnx",
                                     ExportConfig(mode="dom", seed=SEED))
    assert tuned_export["cost"]["macs"] == source_export["cost"]["macs"] < source_export["cost_before_pruning"]["macs"]
    assert tuned_export["cost"]["params"] == source_export["cost"]["params"]
    stored = json.loads((tmp_path / "ft" / "config.json").read_text())
    assert stored["step"] == f"DOM seed {SEED}, distilled from the frozen start weights (weight 0.5, T 1)"


def test_finetune_cli_and_its_bad_input(tmp_path, source, run_main):
    ok = run_cli("finetune", str(source / "best.pt"), "--seed", str(SEED), "--epochs", "1", "--out",
                 str(tmp_path / "ft"))
    assert ok.returncode == 0, ok.stderr
    assert f"DOM seed {SEED} fine-tuned" in ok.stdout
    # export --mode dom without --seed: the seed the run was trained to deploy, else one clear line
    exported = run_cli("export", str(tmp_path / "ft" / "best.pt"), "--mode", "dom", "--out", str(tmp_path / "d.onnx"))
    assert exported.returncode == 0, exported.stderr
    assert json.loads((tmp_path / "d.json").read_text())["seed"] == SEED and "trained to deploy" in exported.stderr
    unseeded = run_main("export", str(source / "best.pt"), "--mode", "dom", "--out", str(tmp_path / "e.onnx"))
    assert_one_line_error(unseeded, "--mode dom needs --seed N", absent=[tmp_path / "e.onnx"])
    baseline = tmp_path / "baseline"
    train(TrainConfig(**{**TINY, "limit_train": 300}, epochs=1), baseline)
    for args, fragment in [
        ([str(baseline / "best.pt"), "--seed", "1"], "trained without WAS"),
        ([str(source / "best.pt"), "--seed", "-1"], "non-negative integer"),
        ([str(source / "best.pt"), "--seed", "1", "--epochs", "0"], "epochs"),
        ([str(tmp_path / "missing.pt"), "--seed", "1"], "checkpoint not found"),
    ]:
        full = [*args] + ([] if "--epochs" in args else ["--epochs", "1"])
        result = run_main("finetune", *full, "--out", str(tmp_path / "bad"))
        assert_one_line_error(result, fragment, absent=[tmp_path / "bad"])
    with pytest.raises(CheckpointError):
        finetune_config(baseline / "best.pt", 1, 1)
