"""Compressing a model you already have: ``--init-from`` trained weights, a frozen ``--teacher``, several
MAC budgets from one run (one deployed DOM each), and their exports."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from tests.conftest import assert_one_line_error, assert_resume_after_kill_is_bit_identical, run_cli
from tests.train.start_weights import WEIGHT_KINDS, save_weights, trained_tiny_model
from wascompress.checkpoint import load_checkpoint
from wascompress.models import create_model
from wascompress.train.config import TrainConfig
from wascompress.train.distributed import init_distributed
from wascompress.train.run_folder import RunFolder
from wascompress.train.trainer import TrainingSession, set_up, train
from wascompress.was import WASConfig, plain_state_dict, use_pw_

CROP = WASConfig(crop=(0.4, 0.6))
TINY = dict(model="tiny", dataset="synthetic", lr=0.05, batch_size=64, bn_batches=2, channels_last=False)


@pytest.fixture
def trained_tiny(tmp_path):
    """A "trained" tiny model and its state_dict file."""
    model = trained_tiny_model(11)
    return model, save_weights(model, tmp_path / "trained.pth", "state_dict")


@pytest.mark.parametrize("kind", WEIGHT_KINDS)
def test_init_from_starts_pw_at_the_source_model_bit_for_bit(tmp_path, kind):
    """PW start at the file's weights, from a state_dict and from a wascompress checkpoint, and the run records
    the file's sha256 (hashlib over its bytes) in config.json. Catches a load skipped for either kind (the
    model's random start weights then answer differently) and a wrong or missing recorded sha256."""
    source = trained_tiny_model(11)
    path = save_weights(source, tmp_path / "trained.pt", kind)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    config = TrainConfig(**TINY, epochs=1, limit_train=200, was=CROP, dom_seeds=(3,), init_from=str(path))
    ctx = init_distributed("cpu")
    setup = set_up(config, ctx, None)  # the configuration settles before the session: it never changes it
    session = TrainingSession(setup, RunFolder(tmp_path / "run"), ctx)  # before any step
    assert session.config is setup.config
    use_pw_(session.core)
    x = torch.randn(8, 3, 32, 32)
    assert torch.equal(session.core.eval()(x), source(x))  # the AOM is the source model
    assert session.config.init_sha256 == digest
    assert not (tmp_path / "run").exists()  # setting up writes nothing
    ctx.close()
    train(config, tmp_path / "run")
    stored = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert stored["init_from"] == str(path) and stored["init_sha256"] == digest


@pytest.mark.parametrize("case,fragment", [
    ("other-architecture", "does not fit tiny: "),
    ("missing-keys", "1 missing: fc.bias"),
    ("not-tensors", "is not a tensor dict"),
    ("missing-path", "weights file not found"),
])
def test_a_wrong_start_file_is_one_line_and_writes_nothing(tmp_path, run_main, case, fragment):
    path = tmp_path / "w.pt"
    if case == "other-architecture":
        torch.save(create_model("vgg16", num_classes=10, width=0.25).state_dict(), path)
    elif case == "missing-keys":
        state = create_model("tiny", num_classes=10).state_dict()
        state.pop("fc.bias")
        torch.save(state, path)
    elif case == "not-tensors":
        torch.save(create_model("tiny", num_classes=10), path)
    run = tmp_path / "run"
    result = run_main("train", "--out", str(run), "--model", "tiny", "--dataset", "synthetic", "--epochs", "1",
                      "--limit-train", "100", "--crop", "0.4", "0.6", "--init-from", str(path))
    assert_one_line_error(result, fragment)
    assert not run.exists()


def test_teacher_init_needs_init_from(tmp_path, run_main):
    result = run_main("train", "--out", str(tmp_path / "run"), "--model", "tiny", "--dataset", "synthetic",
                      "--crop", "0.4", "0.6", "--dom-seed", "1", "--teacher", "init")
    assert_one_line_error(result, "--teacher init distils from the start weights: it needs --init-from FILE")


def test_teacher_is_not_saved(tmp_path, trained_tiny):
    _, path = trained_tiny
    config = TrainConfig(**TINY, epochs=1, limit_train=200, was=CROP, dom_seeds=(3,), init_from=str(path),
                         teacher="init", distill=True)
    train(config, tmp_path / "run")
    checkpoint = load_checkpoint(tmp_path / "run" / "last.pt")
    model = create_model("tiny", num_classes=10)
    assert checkpoint.state_dict.keys() == plain_state_dict(model).keys()
    assert len(checkpoint.optimizer["param_groups"][0]["params"]) == len(list(model.parameters()))
    step = json.loads((tmp_path / "run" / "config.json").read_text())["step"]
    assert step == ("AOM on the labels + DOM seed 3, distilled from the frozen start weights and the AOM forward "
                    "(weight 0.5, T 1)")


RESUME_ARGS = ["train", "--model", "tiny", "--dataset", "synthetic", "--epochs", "2", "--batch-size", "32",
               "--lr", "0.05", "--crop", "0.4", "0.6", "--augment", "--bn-batches", "2", "--limit-train", "800",
               "--save-every", "4", "--dom-seed", "2", "--teacher", "init", "--no-channels-last"]


def test_sigkill_then_resume_is_bit_identical_with_init_from_and_teacher(tmp_path, trained_tiny):
    """From trained weights with a frozen teacher: the resumed run continues at the killed checkpoint's epoch
    and step, runs only the steps left and ends with the uninterrupted weights. Catches a resume that
    restarts from epoch 1 (deterministic, so the weights alone would still match) and one that would reload
    the start weights over the checkpoint's."""
    _, path = trained_tiny
    args = [*RESUME_ARGS, "--init-from", str(path)]
    assert_resume_after_kill_is_bit_identical(args, tmp_path)
    run = tmp_path / "killed"
    # the start file changed under a run that needs it for its teacher: refused, in one line
    torch.save(create_model("tiny", num_classes=10).state_dict(), path)
    changed = run_cli(*args, "--out", str(run), "--resume", "--epochs", "3")
    assert_one_line_error(changed, "changed since the run started")


SHARED = ["--crop", "0.2", "1.0", "--was-shared"]  # tiny's seeds 0-7 then span 0.31-1.0 of the MACs


def test_three_budgets_train_in_one_run_and_export_at_or_under_each(tmp_path, capsys):
    """Three budgets train three DOMs; export --target-macs gives each, and for a budget between them the
    largest trained DOM under it. Catches that fallback removed or choosing the smallest DOM."""
    from wascompress.cli import main

    run = tmp_path / "run"
    code = main(["train", "--out", str(run), "--model", "tiny", "--dataset", "synthetic", "--epochs", "1",
                 "--limit-train", "300", "--batch-size", "64", "--bn-batches", "2", "--no-channels-last", *SHARED,
                 "--target-macs", "0.75", "0.5", "0.35", "--search-seeds", "8", "--distill"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    config = json.loads((run / "config.json").read_text())
    chosen = config["config"]["dom_budget"]["chosen"]
    assert [c["target"] for c in chosen] == [0.75, 0.5, 0.35] and all(c["ratio"] <= c["target"] for c in chosen)
    seeds = [c["seed"] for c in chosen]
    assert config["config"]["dom_seeds"] == seeds and len(set(seeds)) == 3
    assert config["step"].startswith(f"AOM on the labels + DOM seed {seeds[0]} + DOM seed {seeds[1]} + DOM seed {seeds[2]}")
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert sorted(metrics[-1]["val_acc_doms"]) == sorted(map(str, seeds)) and metrics[-1]["passes_per_step"] == 4
    results = json.loads((run / "results.json").read_text())
    assert [b["target"] for b in results["budgets"]] == [0.75, 0.5, 0.35]
    assert all(b["test_acc"] == results["test_acc_doms"][str(b["seed"])] for b in results["budgets"])
    for b in results["budgets"]:  # every budget is printed, not only the first (was: the 0.75 one alone)
        assert (f"budget {b['target']:g}: DOM seed {b['seed']}, {b['macs']:,} MACs ({b['mac_ratio']:.3f} of the AOM's), "
                f"test accuracy {b['test_acc'] * 100:.2f}%") in printed.out
    for budget, seed in zip((0.75, 0.5, 0.35), seeds):
        out = tmp_path / f"dom-{budget}.onnx"
        assert main(["export", str(run / "best.pt"), "--target-macs", str(budget), "--out", str(out)]) == 0
        assert f"DOM seed {seed}, trained for budget {budget:g}" in capsys.readouterr().err
        report = json.loads(out.with_suffix(".json").read_text())
        assert report["seed"] == seed and report["mac_ratio_vs_dense"] <= budget
        assert report["verification"]["top1_identical"]  # ONNX Runtime matches the DOM in PyTorch
        assert report["verification"]["max_abs_diff_scaled"] <= report["verification"]["tolerance"]
        assert json.loads(report["metadata"]["wascompress.budget"])["trained"] is True
    # a budget the run did not train is served by the largest trained DOM at or under it (0.5's, not 0.35's),
    # and its report says so (was: a note on stderr only)
    assert main(["export", str(run / "best.pt"), "--target-macs", "0.6", "--out", str(tmp_path / "d.onnx")]) == 0
    report = json.loads((tmp_path / "d.json").read_text())
    budget = json.loads(report["metadata"]["wascompress.budget"])
    assert budget["trained"] is False and budget["trained_for"] == 0.5 and "trained no DOM for 0.6" in budget["note"]
    assert report["seed"] == seeds[1]


def test_budget_no_seed_reaches_is_one_line_before_training(tmp_path, run_main):
    run = tmp_path / "run"
    result = run_main("train", "--out", str(run), "--model", "tiny", "--dataset", "synthetic", "--epochs", "1",
                      "--limit-train", "100", *SHARED, "--target-macs", "0.75", "0.1", "--search-seeds", "8")
    assert_one_line_error(result, "no DOM seed of the 8 tried reaches 0.1 of the AOM's MACs")
    assert not run.exists()


def test_export_target_macs_no_trained_dom_fits(tmp_path, run_main):
    run = tmp_path / "run"
    train(TrainConfig(**TINY, epochs=1, limit_train=200, was=WASConfig(crop=(0.2, 1.0), shared=True),
                      target_macs=(0.75,), search_seeds=8), run)
    result = run_main("export", str(run / "best.pt"), "--target-macs", "0.4", "--out", str(tmp_path / "x.onnx"))
    assert_one_line_error(result, "trained no DOM at or under 0.4 of the AOM's MACs (its budgets: 0.75 (seed")
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize("args,fragment", [
    (["--model-kwargs", "{drop"], "not JSON"),
    (["--model-kwargs", "[1]"], "must be a JSON object"),
    (["--crop", "0.4", "0.6", "--target-macs", "0.5", "0.5"], "distinct budgets"),
    (["--teacher", "teacher.pt"], "--teacher needs WAS settings"),
])
def test_bad_compression_input(tmp_path, run_main, args, fragment):
    result = run_main("train", "--out", str(tmp_path / "run"), "--model", "tiny", "--dataset", "synthetic", *args)
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "run").exists()


def test_paths_are_recorded_resolved_and_the_weights_checked_before_the_data(tmp_path, trained_tiny, run_main,
                                                                              monkeypatch):
    """Catches relative --init-from / --data-dir recorded as given (evaluate and DOM export then fail from any
    other folder), and a missing --init-from reported only after the image folder was scanned."""
    from tests.data.folders import write_image_folder

    _, weights = trained_tiny
    write_image_folder(tmp_path / "photos", classes=2, per_class=6, size=(32, 32))
    monkeypatch.chdir(tmp_path)
    result = run_main("train", "--out", "run", "--model", "tiny", "--dataset", "imagefolder", "--data-dir",
                      "no-such-folder", "--init-from", "missing.pth", "--epochs", "1", "--crop", "0.4", "0.6")
    assert_one_line_error(result, "weights file not found", absent=[tmp_path / "run"])
    assert run_main("train", "--out", "run", "--model", "tiny", "--num-classes", "10", "--dataset", "imagefolder",
                    "--data-dir", "photos", "--init-from", weights.name, "--epochs", "1", "--batch-size", "4",
                    "--val-size", "2", "--bn-batches", "1", "--crop", "0.4", "0.6").returncode == 0
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert recorded["data_dir"] == str(tmp_path / "photos") and recorded["init_from"] == str(weights)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert run_main("export", "../run/best.pt", "--mode", "dom", "--seed", "0", "--out", "d.onnx").returncode == 0
    (tmp_path / "photos").rename(tmp_path / "moved")
    result = run_main("evaluate", "../run/best.pt", "--mode", "aom")
    assert_one_line_error(result, "pass --data-dir")


@pytest.mark.parametrize("model,flags,mean,source", [
    ("timm:test_resnet", [], [0.5, 0.5, 0.5], "timm:test_resnet's pretrained_cfg"),
    ("tiny", ["--normalize", "imagenet"], [0.485, 0.456, 0.406], "preset imagenet"),
    ("tiny", ["--mean", "0.1", "0.2", "0.3", "--std", "0.4", "0.5", "0.6"], [0.1, 0.2, 0.3], "given mean and std"),
])
def test_preprocessing_is_the_models_or_given_and_recorded_in_every_export(tmp_path, run_main, model, flags, mean,
                                                                          source):
    """Catches a timm model fine-tuned on the folder's statistics instead of its own (silently), --mean/--std or a
    preset ignored, and an export that does not record the input it expects (was: only inside the checkpoint)."""
    run = tmp_path / "run"
    assert run_main("train", "--out", str(run), "--model", model, "--dataset", "synthetic", "--epochs", "1",
                    "--limit-train", "100", "--batch-size", "50", "--bn-batches", "1", "--crop", "0.4", "0.6",
                    "--no-channels-last", *flags).returncode == 0
    assert load_checkpoint(run / "best.pt").dataset["mean"] == pytest.approx(mean)
    for mode in ("aom", "dom"):
        out = tmp_path / f"{mode}.onnx"
        assert run_main("export", str(run / "best.pt"), "--mode", mode, *(["--seed", "0"] if mode == "dom" else []),
                        "--out", str(out)).returncode == 0
        import onnx

        props = {p.key: p.value for p in onnx.load(out).metadata_props}
        recorded = json.loads(props["wascompress.preprocessing"])
        assert recorded["mean"] == pytest.approx(mean) and recorded["source"] == source
        assert recorded["layout"] == "NCHW" and recorded["input_shape"] == [3, 32, 32]
