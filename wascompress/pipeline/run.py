"""``compress``: from a model someone already has to verified ONNX files and a report, in named steps.

plan (every check; the DOM seed of each budget) -> train (resumable) -> export each file -> profile them
side by side -> report. Each finished step is recorded in the folder's manifest, so rerunning the same
command redoes nothing finished; files are written atomically."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from wascompress.checkpoint import trained_doms
from wascompress.data.normalization import preprocessing_record, stats_source
from wascompress.models.registry import model_normalization
from wascompress.pipeline.config import CompressConfig
from wascompress.pipeline.exports import Artifact, artifacts, export_artifact
from wascompress.pipeline.manifest import Manifest, open_manifest
from wascompress.pipeline.prepare import plan_training, recorded_config
from wascompress.pipeline.report import report_rows, write_report
from wascompress.profile import ProfileRequest, TimingPlan, profile
from wascompress.train import TrainConfig, train
from wascompress.train.reporting import Reporter
from wascompress.train.trainer import Setup

log = logging.getLogger(__name__)

RUN = "run"  # the training run's folder inside the compress folder


class StepReporter(Protocol):
    """Told when each step starts (the CLI draws a bar with an ETA); ``done`` steps of ``total`` so far."""

    def step(self, name: str, done: int, total: int) -> None: ...


@dataclass(frozen=True)
class CompressResult:
    """What a compress run made: its folder, the report files and one row of figures per ONNX file."""

    out: Path
    rows: list[dict[str, Any]]
    report: Path  # report.md; report.json and accuracy_latency.png lie beside it

    @property
    def files(self) -> dict[str, Path]:
        """Row name -> its ONNX file."""
        return {r["name"]: self.out / r["file"] for r in self.rows}


def compress(config: CompressConfig, out: str | Path, *, overwrite: bool = False, reporter: Reporter | None = None,
             steps: StepReporter | None = None) -> CompressResult:
    """Run ``config`` into the folder ``out`` (see the module docstring); ``reporter`` follows the epochs."""
    manifest = open_manifest(Path(out), config.to_dict(), overwrite)
    train_config, preprocessing, setup = plan(manifest, config)
    files = artifacts(trained_doms(train_config.dom_budget), config.quantize is not None)
    total, done = len(files) + 3, 1
    tell = steps.step if steps is not None else (lambda name, done, total: None)
    tell("train", done, total)
    checkpoint = train_step(manifest, train_config, reporter, setup)
    exports = {}
    for artifact in files:
        done += 1
        tell(f"export {artifact.file}", done, total)
        exports[artifact.name] = export_step(manifest, artifact, train_config, checkpoint, preprocessing)
    tell("profile", done + 1, total)
    profiled = profile_step(manifest, config, [a.file for a in files])
    rows = report_rows(profiled, exports)
    context = {**config.to_dict(), "model": train_config.model, "preprocessing": preprocessing}
    if manifest.done("report") is None:
        manifest.finish("report", {"files": write_report(manifest.root, rows, context, profiled)})
    tell("done", total, total)
    return CompressResult(manifest.root, rows, manifest.root / "report.md")


def plan(manifest: Manifest, config: CompressConfig) -> tuple[TrainConfig, dict[str, Any], Setup | None]:
    """The settled training configuration and the input preprocessing: recorded by an earlier run of this
    command, else checked and decided now (then the folder is started, and the setup is kept for training)."""
    record, setup = manifest.done("plan"), None
    if record is None:
        setup = plan_training(config)
        manifest.start()
        train_set, settings = setup.splits.train, setup.config.to_dict()
        source = stats_source(settings, model_normalization(setup.config.model))
        record = manifest.finish("plan", {"train_config": settings, "preprocessing": preprocessing_record(
            train_set.input_shape, train_set.mean, train_set.std, source)})
    return recorded_config(record["train_config"]), record["preprocessing"], setup


def train_step(manifest: Manifest, config: TrainConfig, reporter: Reporter | None, setup: Setup | None) -> Path:
    """Train (from the plan's ``setup`` when it was just made; or resume, or skip when done); the checkpoint
    the exports read."""
    run = manifest.root / RUN
    if manifest.done("train") is None:
        resume = (run / "last.pt").is_file()
        results = train(config, run, resume=resume, overwrite=not resume, reporter=reporter, setup=setup)
        manifest.finish("train", {"files": [f"{RUN}/best.pt"], "budgets": results.get("budgets", []),
                                  "test_acc_aom": results["test_acc_aom"]})
    return run / "best.pt"


def export_step(manifest: Manifest, artifact: Artifact, config: TrainConfig, checkpoint: Path,
                preprocessing: dict[str, Any]) -> dict[str, Any]:
    """Export one file (or skip when done); what the report says about it."""
    record = manifest.done(f"export:{artifact.name}")
    if record is None:
        report = export_artifact(artifact, manifest.root, config, checkpoint, preprocessing)
        check = report["verification"]  # export_artifact raises when a file does not compute its model
        record = manifest.finish(f"export:{artifact.name}", {
            "files": [artifact.file, f"{artifact.name}.json"], "kind": artifact.kind, "budget": artifact.budget,
            "seed": artifact.seed, "precision": report["precision"], "sha256": report["sha256"],
            "verified": check["max_abs_diff_scaled"] <= check["tolerance"], "max_abs_diff_scaled": check["max_abs_diff_scaled"]})
    return record


def profile_step(manifest: Manifest, config: CompressConfig, files: list[str]) -> dict[str, Any]:
    """Profile every file side by side, the original first (or read the recorded profile)."""
    record = manifest.done("profile")
    if record is None:
        resolved = config.to_dict()
        request = ProfileRequest(models=tuple(manifest.root / f for f in files), batch_sizes=config.batch_sizes,
                                 plan=TimingPlan(runs=config.latency_runs), dataset=config.dataset,
                                 data_dir=resolved["data_dir"], limit_test=config.limit_test,
                                 labels=tuple(Path(f).stem for f in files))
        record = manifest.finish("profile", {"report": profile(request)})
    return record["report"]
