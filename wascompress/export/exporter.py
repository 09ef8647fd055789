"""Export AOM or DOM models to verified ONNX files (the Python API under ``wascompress export``).

AOM runs the Plain Weights with the checkpoint's (AOM) BatchNorm statistics. DOM seed N freezes the
Shadow Weights that seed N draws (docs/method.md §3.7) after re-estimating BatchNorm for them. The
``dense`` format keeps the SW's zeros in dense Conv ops; ``pruned`` makes the graph physically
smaller: zero filters are removed (:mod:`.filters`), zero kernel borders shrink the kernels
(:mod:`.shrink`), and input crops move into the convs that produce those inputs (:mod:`.absorb`). Every
file is verified against the PyTorch model of the same mode before it is written, atomically, with a
JSON report beside it. With ``quantize`` the verified FP32 graph is then quantized to INT8 (:mod:`.quantize`)
and the INT8 file verified by its top-1 agreement with the FP32 one.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import Tensor, nn

from wascompress.errors import ConfigError
from wascompress.export.absorb import absorb_crops_
from wascompress.export.filters import CHANNEL_ALIGN, remove_zero_filters
from wascompress.export.offsets import offsets_past_batchnorm_
from wascompress.export.onnx_graph import (
    OPSET,
    ExportError,
    metadata_value,
    onnx_bytes,
    set_metadata,
    store_sparse_,
    to_onnx,
    verify,
)
from wascompress.export.quantize import QuantizationData, QuantizeConfig, quantize_verified
from wascompress.export.shrink import shrink_kernels_
from wascompress.fileio import atomic_write_bytes, atomic_write_text, check_output_file
from wascompress.models.cost import count_macs, count_parameters, layer_costs
from wascompress.was import check_seed, dom_draws, has_was, recalibrate_bn_, set_draws_, strip_was_, was_config
from wascompress.was.planned import DomPlan
from wascompress.was.shadow import freeze_draws_

log = logging.getLogger(__name__)

MODES = ("aom", "dom")
FORMATS = ("dense", "pruned")
FORMAT_ALIASES = {"sparse": "dense"}  # the old name of the dense format (not to be confused with sparse_initializers)


@dataclass(frozen=True)
class ExportConfig:
    """What to export and how."""

    mode: str = "aom"  # "aom": PW; "dom": the SW of ``seed``
    seed: int | None = None  # DOM seed
    fitted: str | None = None  # the DOM's fitted correction (wascompress.fit), by key; None: the seed's own draws
    plan: DomPlan | None = None  # a planned DOM (wascompress.plan): its cuts instead of a seed's draws
    format: str | None = None  # "dense" or "pruned"; None: pruned for DOM, dense for AOM
    sparse_initializers: bool = False  # store initializers as COO sparse_initializer (smaller file only)
    recalibrate_bn: bool = True  # re-estimate BatchNorm for the DOM SW (needs calibration batches)
    tolerance: float = 1e-4  # max |ONNX Runtime - PyTorch| / max(1, max |PyTorch|)
    channel_align: int = CHANNEL_ALIGN  # filters are removed down to a multiple of this many channels
    input_shape: tuple[int, int, int] = (3, 32, 32)
    quantize: QuantizeConfig | None = None  # INT8: quantize the verified FP32 graph (needs QuantizationData)

    def __post_init__(self) -> None:
        if self.quantize is not None and self.sparse_initializers:
            raise ConfigError("--sparse-initializers stores float weights as COO; it does not apply to --quantize int8 "
                              "(INT8 weights are already a quarter of the size)")
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.mode == "dom":
            if self.plan is not None and self.seed is not None:
                raise ConfigError("a DOM is a seed's draws or a plan, not both")
            if self.plan is None:
                if self.seed is None:
                    raise ConfigError("--mode dom needs --seed N")
                check_seed(self.seed)
        elif self.seed is not None or self.fitted is not None or self.plan is not None:
            raise ConfigError("--seed applies to --mode dom only")
        fmt = FORMAT_ALIASES.get(self.format, self.format) or ("pruned" if self.mode == "dom" else "dense")
        if fmt not in FORMATS:
            raise ConfigError(f"format must be one of {FORMATS}, got {self.format!r}")
        if isinstance(self.channel_align, bool) or not isinstance(self.channel_align, int) or self.channel_align < 1:
            raise ConfigError(f"channel_align must be a positive integer, got {self.channel_align!r}")
        object.__setattr__(self, "format", fmt)
        if self.plan is not None:  # a plan's kept channels come in its step: the export removes the rest
            object.__setattr__(self, "channel_align", self.plan.channel_step)


def mode_model(model: nn.Module, config: ExportConfig, calibration: list[Tensor] | None) -> nn.Module:
    """A plain PyTorch model (eval, CPU) that computes what the export must: PW, or the frozen DOM SW."""
    model = copy.deepcopy(model).cpu().eval()
    if config.mode == "aom":
        return strip_was_(model) if has_was(model) else model
    if not has_was(model):
        raise ConfigError("--mode dom needs a model trained with WAS (this one has no WAS settings)")
    draws = (config.plan.draws(model, config.fitted) if config.plan is not None
             else dom_draws(model, config.seed, config.fitted))
    set_draws_(model, draws)
    if config.recalibrate_bn:
        if not calibration:
            raise ConfigError("DOM export re-estimates BatchNorm and needs training data: pass --data-dir, "
                              "or --no-recalibrate-bn to keep the stored statistics")
        recalibrate_bn_(model, calibration)
    return freeze_draws_(model, draws).eval()


def verification_inputs(input_shape: tuple[int, int, int], images: Tensor | None) -> list[Tensor]:
    """Seeded random batches of two sizes (the batch axis must be dynamic) plus real images, if any."""
    generator = torch.Generator().manual_seed(1234)
    batches = [torch.randn(2, *input_shape, generator=generator), torch.randn(3, *input_shape, generator=generator)]
    if images is not None and len(images):
        batches.append(images.cpu().float())
    return batches


def cost_summary(model: nn.Module, input_shape: tuple[int, int, int]) -> dict[str, Any]:
    layers = layer_costs(model, input_shape)
    dense = count_macs(model, input_shape)
    zero_macs = sum(layer.macs - layer.nonzero_macs for layer in layers)
    return {"macs": dense, "effective_macs": dense - zero_macs, "params": count_parameters(model),
            "nonzero_params": count_parameters(model, nonzero=True),
            "layers": [asdict(layer) for layer in layers]}


def prune_model(model: nn.Module, config: ExportConfig) -> tuple[nn.Module, dict[str, list[dict[str, Any]]]]:
    """The physically smaller form of a frozen plain ``model`` (changed in place and returned): zero
    filters removed, zero kernel borders shrunk, crops absorbed; with the changes made, by kind."""
    probe = torch.randn(2, *config.input_shape, generator=torch.Generator().manual_seed(99))
    model, filters = remove_zero_filters(model, probe, tolerance=config.tolerance, channel_align=config.channel_align)
    kernels = shrink_kernels_(model)
    absorbed = absorb_crops_(model, probe)
    return model, {"kernel_changes": [asdict(c) for c in kernels], "filter_changes": [asdict(c) for c in filters],
                   "absorbed_crops": [asdict(c) for c in absorbed]}


def export_model(
    model: nn.Module,
    out: str | Path,
    config: ExportConfig,
    *,
    calibration: list[Tensor] | None = None,
    images: Tensor | None = None,
    overwrite: bool = False,
    metadata: dict[str, Any] | None = None,
    quantization: QuantizationData | None = None,
) -> dict[str, Any]:
    """Export ``model`` (with or without WAS) to ``out`` and write ``out`` with suffix .json beside it.

    ``calibration``: training batches for the DOM BatchNorm re-estimation; ``images``: a batch of real
    (normalised) images added to the verification; ``quantization``: the images an INT8 export
    (``config.quantize``) is calibrated and verified on. Returns the report.
    """
    out = Path(out)
    report_path = check_output(out, overwrite)
    if config.quantize is not None and quantization is None:
        raise ConfigError(f"--quantize {config.quantize.dtype} calibrates on the run's training images and checks "
                          "agreement on its validation images, and no data was found: pass --data-dir")
    reference = mode_model(model, config, calibration)
    deployed, changes = deployed_model(reference, config)
    before = cost_summary(reference, config.input_shape)
    after = cost_summary(deployed, config.input_shape)
    props = onnx_properties(model, config, after, bn_note(config, calibration), metadata)
    proto = to_onnx(deployed, config.input_shape)
    set_metadata(proto, props)
    dense = onnx_bytes(proto) if config.sparse_initializers else None
    sparse_names = store_sparse_(proto) if config.sparse_initializers else []
    data = onnx_bytes(proto)
    try:
        data, verification, quantized = verified_bytes(data, reference, config, props, images, quantization, dense)
    except ExportError:
        if overwrite:  # the user asked to replace the old file: leave no stale copy that looks current
            out.unlink(missing_ok=True)
            report_path.unlink(missing_ok=True)
        raise
    report = {
        "file": out.name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "opset": OPSET,
        "mode": config.mode, "seed": config.seed, "fitted": config.fitted, "format": config.format,
        "plan": config.plan.to_dict() if config.plan is not None else None, "was": props["wascompress.was"],
        "input_shape": list(config.input_shape),  # one image's (C, H, W)
        "bn": props["wascompress.bn"], "metadata": {k: metadata_value(v) for k, v in props.items()},
        "sparse_initializers": {"enabled": config.sparse_initializers, "initializers": sparse_names,
                                "note": "ONNX Runtime densifies sparse initializers at load: smaller file, same speed"},
        "cost_before_pruning": before, "cost": after, "mac_ratio_vs_dense": after["macs"] / before["macs"],
        **changes, "verification": verification,
        "precision": config.quantize.dtype if config.quantize is not None else "fp32", "quantization": quantized,
        "graph_cost": graph_cost(data, config.input_shape),
    }
    atomic_write_bytes(out, data)
    atomic_write_text(report_path, json.dumps(report, indent=2, sort_keys=True) + "\n")
    log.debug("wrote %s (%s MACs, %.1f%% of the unpruned %s model)", out, f"{after['macs']:,}",
              100 * report["mac_ratio_vs_dense"], config.mode.upper())
    return report


PARAMS_NOTE = ("params: as `wascompress profile` counts them, the initializers of the file (BatchNorm folded into the "
               "convs' weights and biases, constants the exporter folded); cost.params counts the PyTorch model's "
               "parameters (BatchNorm's scale and shift as parameters of their own)")


def graph_cost(data: bytes, input_shape: tuple[int, int, int]) -> dict[str, Any]:
    """MACs and parameters of the written file, counted as the profiler counts them (one count per figure)."""
    from wascompress.profile.onnx_cost import onnx_cost

    cost = onnx_cost(onnx.load_from_string(data), tuple(input_shape[1:]))
    return {"macs": cost.macs, "params": cost.params, "nonzero_params": cost.nonzero_params, "note": PARAMS_NOTE}


def deployed_model(reference: nn.Module, config: ExportConfig) -> tuple[nn.Module, dict[str, list[dict[str, Any]]]]:
    """The model the file holds: a copy of ``reference``, physically pruned in the ``pruned`` format;
    with the changes made, by kind (none in the ``dense`` format)."""
    deployed = copy.deepcopy(reference)
    if config.format != "pruned":
        return deployed, {"kernel_changes": [], "filter_changes": [], "absorbed_crops": []}
    deployed, changes = prune_model(deployed, config)
    changes["offsets_past_batchnorm"] = offsets_past_batchnorm_(deployed.eval())  # so BatchNorm folds again
    return deployed, changes


def onnx_properties(model: nn.Module, config: ExportConfig, cost: dict[str, Any], bn: str,
                    metadata: dict[str, Any] | None) -> dict[str, Any]:
    """The ``wascompress.*`` metadata of an exported file: its mode, seed, format, WAS settings, MACs
    (``cost`` of the deployed graph), BatchNorm statistics, and the caller's ``metadata``."""
    props = {"wascompress.mode": config.mode, "wascompress.seed": "" if config.seed is None else str(config.seed),
             "wascompress.fitted": config.fitted or "", "wascompress.format": config.format,
             "wascompress.plan": "" if config.plan is None else f"{config.plan.target_macs:g}",
             "wascompress.was": was_config(model).to_dict() if has_was(model) else None,
             "wascompress.macs": str(cost["macs"]), "wascompress.effective_macs": str(cost["effective_macs"]),
             "wascompress.bn": bn}
    props.update({f"wascompress.{k}": v for k, v in (metadata or {}).items()})
    return props


def verified_bytes(data: bytes, reference: nn.Module, config: ExportConfig, props: dict[str, Any],
                   images: Tensor | None, quantization: QuantizationData | None,
                   dense: bytes | None) -> tuple[bytes, dict[str, Any], dict[str, Any] | None]:
    """The bytes to write: ``data`` verified against ``reference`` (and with ``config.quantize`` quantized
    to INT8, its metadata added to ``props``), with the verification and quantization reports; an
    :class:`ExportError` when the file does not compute what ``reference`` does."""
    verification = verify(data, reference, verification_inputs(config.input_shape, images), config.tolerance,
                          dense_data=dense)
    if config.quantize is None:
        return data, verification, None
    proto, quantized = quantize_verified(data, quantization, config.quantize)
    props["wascompress.quantize"] = {k: quantized.get(k) for k in QUANTIZE_METADATA}
    set_metadata(proto, props)
    return onnx_bytes(proto), verification, quantized


QUANTIZE_METADATA = ("dtype", "format", "calibration", "calibration_images", "per_channel", "reduce_range",
                     "agreement", "min_agreement", "fp32_test_top1", "int8_test_top1", "fp32_sha256")
"""What an INT8 file's ``wascompress.quantize`` metadata records (the report holds the rest)."""


def check_output(out: Path, overwrite: bool) -> Path:
    """Refuse an output that cannot be written or would replace files without ``overwrite``; returns the
    report's path (``out`` with suffix .json)."""
    if out.suffix.lower() == ".json":
        raise ConfigError(f"output {out} ends in .json, the name of the report written beside the model; "
                          "name the model .onnx")
    check_output_file(out, overwrite)
    return check_output_file(out.with_suffix(".json"), overwrite)


def bn_note(config: ExportConfig, calibration: list[Tensor] | None) -> str:
    if config.mode == "aom":
        return "stored (AOM statistics of the checkpoint)"
    if not config.recalibrate_bn:
        return "stored (not re-estimated for this SW: --no-recalibrate-bn)"
    return f"re-estimated for this SW on {sum(len(b) for b in calibration or [])} training images"
