"""The run folder (``wascompress/train/run_folder.py``): its files, the refusal to clobber a run or to resume
one that is not there (writing nothing), and the stored configuration a resume continues with."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.conftest import assert_one_line_error
from tests.export.runs import one_torch_thread  # noqa: F401  (autouse: tiny models run faster on one thread)
from wascompress.errors import CheckpointError, ConfigError
from wascompress.train.config import TrainConfig
from wascompress.train.run_folder import RESUMABLE_CHANGES, RUN_FILES, RunFolder, config_for_resume
from wascompress.train.trainer import train
from wascompress.was import WASConfig

TINY = dict(model="tiny", dataset="synthetic", lr=0.05, batch_size=64, bn_batches=2)
WAS = WASConfig(crop=(0.4, 0.6), translate=0.3)
FINISHED = TrainConfig(**TINY, epochs=1, limit_train=300, was=WAS, channels_last=False)  # fixed: no timing probe


def digest_folder(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "done"
    train(FINISHED, run)
    return run


# ---------------------------------------------------------------------------------------------------
# RunFolder


def test_the_files_of_a_run(tmp_path):
    run = RunFolder(tmp_path / "r")
    assert (run.config, run.metrics, run.last, run.best, run.results) == tuple(tmp_path / "r" / n for n in RUN_FILES)


def test_a_new_or_foreign_folder_may_hold_a_run(tmp_path):
    RunFolder(tmp_path / "new").check(resume=False, overwrite=False)
    assert not (tmp_path / "new").exists()  # checking writes nothing
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README.txt").write_text("mine")
    RunFolder(tmp_path / "notes").check(resume=False, overwrite=False)  # files that are not a run's are no run


def test_an_existing_run_needs_overwrite_and_clear_removes_only_its_files(tmp_path):
    run = RunFolder(tmp_path)
    run.metrics.write_text("{}\n")
    run.best.write_bytes(b"weights")
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError) as caught:
        run.check(resume=False, overwrite=False)
    assert "already holds a run (metrics.jsonl, best.pt)" in str(caught.value)
    assert "--resume" in str(caught.value) and "--overwrite" in str(caught.value)
    run.check(resume=False, overwrite=True)
    assert run.best.exists()  # checking writes nothing, even with overwrite
    run.clear()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    run.clear()  # nothing left to remove: no error


def test_resume_needs_a_last_checkpoint_and_a_run_folder_must_be_a_folder(tmp_path):
    run = RunFolder(tmp_path)
    run.best.write_bytes(b"weights")  # best.pt alone cannot be resumed
    with pytest.raises(CheckpointError, match="cannot resume: no checkpoint at .*last.pt"):
        run.check(resume=True, overwrite=False)
    run.last.write_bytes(b"")
    run.check(resume=True, overwrite=False)  # there is one (whether it reads is the checkpoint's to say)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="exists and is not a folder"):
        RunFolder(tmp_path / "file").check(resume=False, overwrite=True)


# ---------------------------------------------------------------------------------------------------
# config_for_resume


def test_resume_continues_with_the_stored_configuration(finished_run):
    stored = config_for_resume(finished_run, {})
    assert stored == FINISHED
    same = config_for_resume(finished_run, {"lr": 0.05, "model": "tiny", "was": {}, "seed": None})  # as stored
    assert same == stored


def test_resume_may_change_only_the_resumable_settings(finished_run):
    assert set(RESUMABLE_CHANGES) == {"epochs", "device", "save_every", "amp", "channels_last", "workers"}
    changed = config_for_resume(finished_run, {"epochs": 3, "save_every": 5, "device": "cpu", "workers": 0})
    assert (changed.epochs, changed.save_every, changed.device, changed.workers) == (3, 5, "cpu", 0)
    assert changed.lr == 0.05 and changed.was == WAS
    with pytest.raises(ConfigError, match=r"cannot resume: the run was trained with lr=0.05, not 0.1"):
        config_for_resume(finished_run, {"epochs": 3, "lr": 0.1})
    with pytest.raises(ConfigError, match="cannot resume: the run was trained with was="):
        config_for_resume(finished_run, {"was": {"crop": [0.5, 0.6]}})
    with pytest.raises(ConfigError, match="epochs must be an integer >= 1"):  # a changed setting is still checked
        config_for_resume(finished_run, {"epochs": 0})


def test_resume_of_a_folder_without_a_run(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        config_for_resume(tmp_path, {})


# ---------------------------------------------------------------------------------------------------
# Through the CLI: one clear line, exit code 2, the run untouched


def test_existing_run_needs_resume_or_overwrite(finished_run, run_main):
    before = digest_folder(finished_run)
    result = run_main("train", "--model", "tiny", "--dataset", "synthetic", "--out", str(finished_run))
    assert_one_line_error(result, "--resume")
    assert digest_folder(finished_run) == before


def test_resume_without_checkpoint(tmp_path, run_main):
    (tmp_path / "empty").mkdir()
    result = run_main("train", "--model", "tiny", "--out", str(tmp_path / "empty"), "--resume")
    assert_one_line_error(result, "no checkpoint")


def test_resume_with_checkpoint_of_another_model(finished_run, run_main):
    before = digest_folder(finished_run)
    result = run_main("train", "--model", "vgg16", "--dataset", "synthetic", "--out", str(finished_run), "--resume")
    assert_one_line_error(result, "vgg16")
    assert digest_folder(finished_run) == before


def test_resume_with_truncated_checkpoint(tmp_path, finished_run, run_main):
    run = tmp_path / "trunc"
    run.mkdir()
    data = (finished_run / "last.pt").read_bytes()
    (run / "last.pt").write_bytes(data[: len(data) // 2])
    result = run_main("train", "--out", str(run), "--resume")
    assert_one_line_error(result, "last.pt")
