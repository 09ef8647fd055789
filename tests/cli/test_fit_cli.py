"""``wascompress fit``: a trained checkpoint's DOMs fitted without training, one checkpoint out, exported as
fitted by ``export --target-macs``; bad input is one line and writes nothing."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import assert_one_line_error
from wascompress.checkpoint import load_checkpoint
from wascompress.train.config import TrainConfig
from wascompress.train.trainer import train
from wascompress.was import dom_draws, set_draws_, use_pw_, was_layers
from wascompress.was.fitted import seed_key

TINY = dict(model="tiny", dataset="synthetic", lr=0.05, batch_size=64, bn_batches=2, channels_last=False)
SHARED = ["--crop", "0.2", "1.0", "--was-shared"]


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory):
    """A tiny model trained without WAS (one epoch of synthetic images)."""
    run = tmp_path_factory.mktemp("plain") / "run"
    train(TrainConfig(**TINY, epochs=1, limit_train=300), run)
    return run / "best.pt"


def test_fit_writes_the_aom_and_every_budgets_fitted_dom_and_export_writes_it(tmp_path, run_main, plain_run):
    """Catches a fit command that leaves the corrections out of its checkpoint, changes the AOM, or whose
    checkpoint export --target-macs exports unfitted."""
    out = tmp_path / "fitted.pt"
    result = run_main("fit", str(plain_run), *SHARED, "--target-macs", "0.75", "0.5", "--search-seeds", "8",
                      "--fit-images", "128", "--out", str(out))
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("DOM seed")]
    assert len(lines) == 2 and "budget 0.75" in lines[0] and "budget 0.5" in lines[1]
    fitted, source = load_checkpoint(out), load_checkpoint(plain_run)
    model, original = fitted.build_model(), source.build_model()
    use_pw_(model)
    x = torch.randn(4, 3, 32, 32)
    assert torch.equal(model(x), original(x))  # the AOM is the trained model
    chosen = fitted.trained_doms()
    assert [d["target"] for d in chosen] == [0.75, 0.5] and all(d["ratio"] <= d["target"] for d in chosen)
    for dom in chosen:
        key = fitted.fitted_key(dom["seed"])
        assert key == seed_key(dom["seed"])
        assert all(layer.fitted[key].abs().sum() > 0 for layer in was_layers(model).values())
        set_draws_(model, dom_draws(model, dom["seed"], key))
        fitted_out = model(x)
        set_draws_(model, dom_draws(model, dom["seed"]))
        assert not torch.equal(fitted_out, model(x))
    onnx_path = tmp_path / "dom.onnx"
    assert run_main("export", str(out), "--target-macs", "0.5", "--out", str(onnx_path)).returncode == 0
    report = json.loads(onnx_path.with_suffix(".json").read_text())
    assert report["fitted"] == seed_key(chosen[1]["seed"]) and report["verification"]["top1_identical"]
    assert report["mac_ratio_vs_dense"] <= 0.5


@pytest.mark.parametrize("args,fragment", [
    (["--target-macs", "0.5"], "was trained without WAS: give the WAS settings"),
    ([*SHARED, "--target-macs", "0.05", "--search-seeds", "4"], "no DOM seed of the 4 tried reaches 0.05"),
    ([*SHARED, "--target-macs", "0.5", "--dom-seed", "1"], "give one of --target-macs, --dom-seed and --plan"),
    ([*SHARED], "trained no DOM seed: give --target-macs R or --dom-seed N"),
])
def test_bad_fit_input_is_one_line_and_writes_nothing(tmp_path, run_main, plain_run, args, fragment):
    out = tmp_path / "fitted.pt"
    assert_one_line_error(run_main("fit", str(plain_run), *args, "--out", str(out)), fragment, absent=[out])


def test_fit_never_overwrites_without_asking(tmp_path, run_main, plain_run):
    out = tmp_path / "fitted.pt"
    out.write_bytes(b"mine")
    result = run_main("fit", str(plain_run), *SHARED, "--dom-seed", "1", "--fit-images", "64", "--out", str(out))
    assert_one_line_error(result, "exists; pass --overwrite")
    assert out.read_bytes() == b"mine"


def test_fit_without_its_training_data_names_data_dir(tmp_path, run_main, plain_run):
    """Catches a fit that solves on other images than the run's, or fails with a traceback, when the run's
    data is gone."""
    from dataclasses import replace

    loaded = load_checkpoint(plain_run)
    moved = replace(loaded, train_config={**loaded.train_config, "dataset": "cifar10",
                                          "data_dir": str(tmp_path / "gone")})
    moved.save(tmp_path / "moved.pt")
    out = tmp_path / "fitted.pt"
    result = run_main("fit", str(tmp_path / "moved.pt"), *SHARED, "--dom-seed", "1", "--out", str(out))
    assert_one_line_error(result, "pass --data-dir", absent=[out])
