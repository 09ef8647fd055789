"""The files a compress run ships: the original model as it came, the AOM and every budget's DOM (and their
INT8 twins), each exported and verified by the export API.

An :class:`Artifact` names one file and how it is made. Exports record the trained weights by their
content (not the checkpoint file, which also holds timings), so the same run gives the same bytes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wascompress.checkpoint import Checkpoint, load_checkpoint, state_sha256
from wascompress.data.run_data import data_settings, load_splits
from wascompress.export import ExportConfig, QuantizeConfig, export_checkpoint, export_model
from wascompress.export.from_checkpoint import first_val_batch
from wascompress.models import create_model
from wascompress.train import TrainConfig
from wascompress.was import plain_state_dict
from wascompress.weights import load_weights_, read_weights

ORIGINAL = "original"


@dataclass(frozen=True)
class Artifact:
    """One exported file: ``name`` (its stem), what it holds and, for a DOM, its budget and seed."""

    name: str
    kind: str  # "original", "aom" or "dom"
    budget: float | None = None
    seed: int | None = None
    int8: bool = False

    @property
    def file(self) -> str:
        return f"{self.name}.onnx"


def artifacts(budgets: list[dict[str, Any]], quantize: bool) -> list[Artifact]:
    """The original model, the AOM, one DOM per budget (``{"target", "seed"}``), then the INT8 twins."""
    fp32 = [Artifact(ORIGINAL, "original"), Artifact("aom", "aom")]
    fp32 += [Artifact(f"dom-{b['target']:g}", "dom", b["target"], b["seed"]) for b in budgets]
    twins = [Artifact(f"{a.name}-int8", a.kind, a.budget, a.seed, True) for a in fp32[1:]] if quantize else []
    return fp32 + twins


def export_artifact(artifact: Artifact, root: Path, config: TrainConfig, checkpoint: Path,
                    preprocessing: dict[str, Any]) -> dict[str, Any]:
    """Export ``artifact`` into ``root`` (replacing a half-done file of an interrupted run); its export report."""
    out = root / artifact.file
    if artifact.kind == ORIGINAL:
        return export_original(config, out, preprocessing)
    loaded = load_checkpoint(checkpoint)
    fitted = loaded.fitted_key(artifact.seed) if artifact.seed is not None else None  # the DOM the run trained
    export = ExportConfig(mode=artifact.kind, seed=artifact.seed, fitted=fitted,
                          quantize=QuantizeConfig() if artifact.int8 else None)
    return export_checkpoint(checkpoint, out, export, overwrite=True, loaded=loaded,
                             source=trained_source(checkpoint, loaded, root, preprocessing))


def trained_source(checkpoint: Path, loaded: Checkpoint, root: Path, preprocessing: dict[str, Any]) -> dict[str, Any]:
    """What an export of the trained weights records about them (``wascompress.*`` metadata)."""
    return {"source_checkpoint": str(checkpoint.relative_to(root)), "weights_sha256": state_sha256(loaded.state_dict),
            "model": loaded.model.to_dict(), "data": data_settings(loaded.train_config),
            "preprocessing": preprocessing}


def export_original(config: TrainConfig, out: Path, preprocessing: dict[str, Any]) -> dict[str, Any]:
    """The user's model with the start weights as they came (no WAS, its own BatchNorm statistics),
    verified on random and real images of the run."""
    weights = read_weights(config.init_from)
    splits = load_splits(config.to_dict())
    num_classes = config.num_classes or splits.train.num_classes
    model = create_model(config.model, num_classes=num_classes, width=config.width, kwargs=config.model_kwargs)
    load_weights_(model, weights, config.model)
    images = first_val_batch(splits)
    source = {"source_weights": weights.path, "source_sha256": weights.sha256,
              "weights_sha256": state_sha256(plain_state_dict(model)),
              "model": {"name": config.model, "num_classes": num_classes, "width": config.width,
                        **({"kwargs": config.model_kwargs} if config.model_kwargs else {})},
              "data": data_settings(config.to_dict()), "preprocessing": preprocessing}
    return export_model(model, out, ExportConfig(mode="aom", input_shape=(3, *config.image_size)), images=images,
                        overwrite=True, metadata=source)

