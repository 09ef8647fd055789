"""The run folder: its files, the refusal to clobber or to resume what is not there, and the stored
configuration a resume continues with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wascompress.checkpoint import load_checkpoint
from wascompress.errors import CheckpointError, ConfigError
from wascompress.train.config import TrainConfig

RUN_FILES = ("config.json", "metrics.jsonl", "last.pt", "best.pt", "results.json")
# Settings a resumed run may change; anything else must match the checkpoint.
RESUMABLE_CHANGES = ("epochs", "device", "save_every", "amp", "channels_last", "workers")
PATH_SETTINGS = ("data_dir", "init_from", "teacher")  # recorded as absolute paths


@dataclass(frozen=True)
class RunFolder:
    """The files of one run: config.json, metrics.jsonl, last.pt, best.pt, results.json."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def last(self) -> Path:
        return self.root / "last.pt"

    @property
    def best(self) -> Path:
        return self.root / "best.pt"

    @property
    def results(self) -> Path:
        return self.root / "results.json"

    def check(self, resume: bool, overwrite: bool) -> None:
        """Refuse to clobber a run, or to resume one that is not there; writes nothing."""
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"run folder {self.root} exists and is not a folder")
        if resume:
            if not self.last.is_file():
                raise CheckpointError(f"cannot resume: no checkpoint at {self.last}")
            return
        existing = [n for n in RUN_FILES if (self.root / n).exists()]
        if existing and not overwrite:
            raise ConfigError(f"run folder {self.root} already holds a run ({', '.join(existing)}); "
                              "pass --resume to continue it or --overwrite to replace it")

    def clear(self) -> None:
        """Remove a previous run's files (only ours; other files in the folder stay)."""
        for name in RUN_FILES:
            (self.root / name).unlink(missing_ok=True)


def config_for_resume(run_dir: str | Path, overrides: dict[str, Any]) -> TrainConfig:
    """The stored configuration of a run, with the settings a resume may change applied.

    Any other explicitly given setting that differs from the stored one is an error naming it.
    """
    run = RunFolder(Path(run_dir))
    run.check(resume=True, overwrite=False)
    checkpoint = load_checkpoint(run.last)
    stored = TrainConfig.from_dict(checkpoint.train_config)
    data = stored.to_dict()
    for key, value in overrides.items():
        if value is None or key == "was" and not value:
            continue
        if key == "was":
            value = TrainConfig.from_dict({**data, "was": value}).to_dict()["was"]
        if key in PATH_SETTINGS and value != "init":  # recorded resolved (settle_paths)
            value = str(Path(value).resolve())
        if key not in RESUMABLE_CHANGES and data.get(key) != value:
            raise ConfigError(f"cannot resume: the run was trained with {key}={data.get(key)!r}, not {value!r}")
        data[key] = value
    return TrainConfig.from_dict(data)
