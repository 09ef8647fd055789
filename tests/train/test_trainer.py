"""The trainer end to end: run files, determinism, kill-and-resume, torchrun, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, assert_one_line_error, assert_resumed_where_killed, kill_midway, run_cli
from wascompress.checkpoint import load_checkpoint
from wascompress.data import load_dataset, split_validation
from wascompress.evaluate import count_correct
from wascompress.train.config import TrainConfig
from wascompress.train.trainer import train
from wascompress.was import WASConfig

TINY = dict(model="tiny", dataset="synthetic", lr=0.05, batch_size=64, bn_batches=2)
WAS = WASConfig(crop=(0.4, 0.6), translate=0.3)


def files_of(run: Path) -> set[str]:
    return {p.name for p in run.iterdir()}


def test_synthetic_run_writes_everything_and_learns(tmp_path):
    config = TrainConfig(**TINY, epochs=4, was=WAS)
    results = train(config, tmp_path / "run")
    run = tmp_path / "run"
    assert files_of(run) == {"config.json", "metrics.jsonl", "last.pt", "best.pt", "results.json"}
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2, 3, 4]
    for m in metrics:
        for key in ("train_loss", "train_acc", "val_acc_aom", "val_acc_dom", "lr", "images_per_s"):
            assert isinstance(m[key], float) and m[key] == m[key] and abs(m[key]) != float("inf"), key
    assert metrics[-1]["val_acc_aom"] > 0.3 and results["test_acc_aom"] > 0.3  # chance is 0.1
    assert results["test_acc_dom"] > 0.2
    stored = json.loads((run / "config.json").read_text())
    assert stored["config"]["was"]["crop"] == [0.4, 0.6] and stored["versions"]["torch"]
    checkpoint = torch.load(run / "best.pt", weights_only=True)
    assert checkpoint["model"] == {"name": "tiny", "num_classes": 10, "width": 1.0}
    assert checkpoint["was"]["translate"] == 0.3 and checkpoint["best"]["mode"] == "aom"
    assert {"optimizer", "rng", "train_config"} <= checkpoint.keys()


def test_checkpoint_keeps_aom_statistics(tmp_path):
    """best.pt's stored BN statistics reproduce the validation accuracy measured after re-estimation."""
    config = TrainConfig(**TINY, epochs=2, was=WAS)
    train(config, tmp_path / "run")
    checkpoint = load_checkpoint(tmp_path / "run" / "best.pt")
    model = checkpoint.build_model()
    pool = load_dataset("synthetic", None, train=True, seed=0)
    _, val = split_validation(pool, len(pool) // 10, seed=0)
    assert count_correct(model, val).top1 == checkpoint.progress.best["val_acc"]


def test_real_cifar10_short_run(tmp_path, cifar_dir):
    config = TrainConfig(model="tiny", dataset="cifar10", data_dir=str(cifar_dir), epochs=1, batch_size=50,
                         limit_train=400, limit_test=200, bn_batches=2, was=WAS)
    results = train(config, tmp_path / "run")
    assert files_of(tmp_path / "run") >= {"config.json", "metrics.jsonl", "last.pt", "best.pt", "results.json"}
    assert results["sizes"] == {"train": 360, "val": 40, "test": 200}
    assert 0 <= results["test_acc_aom"] <= 1


def state_of(path: Path) -> dict:
    checkpoint = torch.load(path, weights_only=True)
    return {"weights": checkpoint["state_dict"], "optimizer": checkpoint["optimizer"]["state"],
            "rng": checkpoint["rng"], "epoch": checkpoint["epoch"]}


def assert_same_state(a: dict, b: dict) -> None:
    assert a["epoch"] == b["epoch"]
    assert a["weights"].keys() == b["weights"].keys()
    for key in a["weights"]:
        assert torch.equal(a["weights"][key], b["weights"][key]), key
    for index, buffers in a["optimizer"].items():
        assert torch.equal(buffers["momentum_buffer"], b["optimizer"][index]["momentum_buffer"])
    assert torch.equal(a["rng"]["was"], b["rng"]["was"]) and torch.equal(a["rng"]["torch"], b["rng"]["torch"])


def test_same_seed_gives_identical_last_checkpoint(tmp_path):
    # the memory format is fixed: left to the timing probe, two runs could choose differently
    config = TrainConfig(**TINY, epochs=2, limit_train=600, augment=True, was=WASConfig(filter=(0.5, 1.0)),
                         channels_last=False)
    train(config, tmp_path / "a")
    train(config, tmp_path / "b")
    assert_same_state(state_of(tmp_path / "a" / "last.pt"), state_of(tmp_path / "b" / "last.pt"))
    other = replace(config, seed=1)
    train(other, tmp_path / "c")
    with pytest.raises(AssertionError):
        assert_same_state(state_of(tmp_path / "a" / "last.pt"), state_of(tmp_path / "c" / "last.pt"))


TRAIN_ARGS = ["train", "--model", "tiny", "--dataset", "synthetic", "--epochs", "3", "--batch-size", "32",
              "--lr", "0.05", "--crop", "0.4", "0.6", "--translate", "0.3", "--augment", "--bn-batches", "2",
              "--limit-train", "1000", "--save-every", "5"]
FIXED_FORMAT = ["--no-channels-last"]  # left to the timing probe, two runs could choose differently


def test_sigkill_then_resume_gives_the_uninterrupted_weights(tmp_path):
    """Resumed after a SIGKILL, the run says it continues at the killed checkpoint's epoch and step, runs only
    the steps left and ends with the uninterrupted run's weights, momentum and random states. Catches a
    resume that restarts from epoch 1 (``resume_state`` returning None: training is deterministic, so the
    weights alone would still match) and one that loses any of that state."""
    reference = run_cli(*TRAIN_ARGS, *FIXED_FORMAT, "--out", str(tmp_path / "ref"))
    assert reference.returncode == 0, reference.stderr
    run = tmp_path / "killed"
    kill_midway([*TRAIN_ARGS, *FIXED_FORMAT, "--out", str(run)], run / "last.pt", 0.3)
    killed_at = load_checkpoint(run / "last.pt")  # what the kill left, and the resume reads
    assert (killed_at.progress.epoch, killed_at.progress.step) < (3, 0), "the run finished before it was killed"
    resumed = run_cli(*TRAIN_ARGS, *FIXED_FORMAT, "--out", str(run), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert_resumed_where_killed(resumed, run, killed_at, tmp_path / "ref")
    assert_same_state(state_of(tmp_path / "ref" / "last.pt"), state_of(run / "last.pt"))
    assert (tmp_path / "ref" / "metrics.jsonl").read_text().count("\n") == (run / "metrics.jsonl").read_text().count("\n")


def test_torchrun_two_processes_on_cpu(tmp_path):
    run = tmp_path / "ddp"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "wascompress", *TRAIN_ARGS[:-2], "--epochs", "2", "--device", "cpu", "--out", str(run)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((run / "results.json").read_text())
    hashes = results["last_weights_sha256_per_rank"]
    assert len(hashes) == 2 and hashes[0] == hashes[1]
    assert files_of(run) == {"config.json", "metrics.jsonl", "last.pt", "best.pt", "results.json"}
    assert json.loads((run / "config.json").read_text())["world_size"] == 2
    assert result.stdout.count("test accuracy") == 1  # only rank 0 reports


# ---------------------------------------------------------------------------------------------------
# Bad input: one clear line, exit code 2, nothing touched


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--dataset", "cifar10", "--data-dir", "/nonexistent/data"], "/nonexistent/data"),
        (["--crop", "0.5", "1.5"], "1.5"),
        (["--translate", "1.0"], "translate"),
        (["--model", "resnet99"], "resnet99"),
        (["--epochs", "0"], "epochs"),
        (["--image-size", "64", "48", "32"], "image size must be H or H W"),
        (["--image-size", "4"], "[8, 4096]"),
    ],
)
def test_bad_training_input(tmp_path, run_main, args, fragment):
    result = run_main("train", "--model", "tiny", "--dataset", "synthetic", "--out", str(tmp_path / "r"),
                      *[a for a in args if a])
    assert_one_line_error(result, fragment, absent=[tmp_path / "r"])


def test_corrupt_archive_is_refused(tmp_path):
    """In a real process (the other bad-input cases run in this one): one line, no traceback."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "cifar-10-python.tar.gz").write_bytes(b"\x1f\x8b\x08\x00 this is not a tar archive")
    result = run_cli("train", "--model", "tiny", "--data-dir", str(data), "--out", str(tmp_path / "r"))
    assert_one_line_error(result, "cifar-10-python.tar.gz", absent=[tmp_path / "r"])


def test_rng_state_holds_and_restores_the_cuda_states(monkeypatch):
    from wascompress.train import trainer

    saved_cuda = [torch.ByteTensor([1, 2, 3]), torch.ByteTensor([4, 5])]
    restored = {}
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: saved_cuda)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: restored.setdefault("cuda", states))
    generator = torch.Generator().manual_seed(5)
    state = trainer.rng_state(generator, torch.device("cuda", 0))
    assert state["cuda"] is saved_cuda and torch.equal(state["was"], generator.get_state())
    expected = torch.rand(3, generator=generator)
    trainer.restore_rng_state(state, generator, torch.device("cuda", 0))
    assert restored["cuda"] is saved_cuda and torch.equal(torch.rand(3, generator=generator), expected)
    assert "cuda" not in trainer.rng_state(generator, torch.device("cpu"))
    if torch.cuda.is_available():  # a real GPU: the device's generator comes back
        torch.cuda.manual_seed_all(3)
        monkeypatch.undo()
        real = trainer.rng_state(None, torch.device("cuda", 0))
        first = torch.rand(2, device="cuda")
        trainer.restore_rng_state(real, None, torch.device("cuda", 0))
        assert torch.equal(torch.rand(2, device="cuda"), first)


def test_image_size_is_a_setting_recorded_in_the_run(tmp_path, run_main):
    """--image-size H W: synthetic images made at that size, recorded in config.json and the checkpoint,
    which export and evaluation read back; a resume keeps it."""
    from wascompress.cli import main

    run = tmp_path / "run"
    args = ["train", "--out", str(run), "--model", "tiny", "--dataset", "synthetic", "--epochs", "1", "--limit-train",
            "120", "--limit-test", "50", "--batch-size", "40", "--bn-batches", "1", "--image-size", "24", "40"]
    assert main(args) == 0
    stored = json.loads((run / "config.json").read_text())["config"]
    checkpoint = load_checkpoint(run / "last.pt")
    assert stored["image_size"] == checkpoint.train_config["image_size"] == [24, 40]
    assert checkpoint.dataset["image_size"] == [24, 40] and checkpoint.input_shape == (3, 24, 40)
    assert TrainConfig.from_dict(checkpoint.train_config).image_size == (24, 40)
    assert main([*args[:3], "--resume", "--epochs", "2", "--image-size", "24", "40"]) == 0
    assert load_checkpoint(run / "last.pt").train_config["image_size"] == [24, 40]
    refused = run_main(*args[:3], "--resume", "--epochs", "3", "--image-size", "32")
    assert_one_line_error(refused, "image_size=[24, 40], not [32, 32]")


def test_runs_recorded_before_the_setting_trained_at_32():
    assert TrainConfig().image_size == (32, 32) and TrainConfig(image_size=64).image_size == (64, 64)
    # a checkpoint recorded before image_size existed: tests/test_checkpoint.py (its input_shape)
