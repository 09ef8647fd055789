"""INT8 deployment: static QDQ quantization of a verified FP32 export, by ONNX Runtime's own tools.

The FP32 graph the exporter verified (AOM or a DOM seed, sparse or pruned) goes through
``onnxruntime.quantization``: ``quant_pre_process`` (shape inference and graph optimisation), then
``quantize_static`` in the QDQ format with per-channel INT8 weights and UINT8 activations, whose ranges
are calibrated on training images of the run in a fixed order (the BatchNorm re-estimation's source and
order: :func:`wascompress.data.run_data.checkpoint_calibration_images`). An INT8 file cannot match FP32
to 1e-4, so it is verified by what a user relies on: its top-1 agrees with the FP32 export's on the
validation images in at least ``min_agreement`` of them, else it is not written. The test accuracy of
both goes into the report and the file's metadata. The same inputs give the same bytes: the calibration
order is fixed, the quantizer's temporary files stay out of the graph, and the file is re-serialised
deterministically with wascompress's own metadata.

Calibration method (``--calibration``): ``minmax`` (the observed range; the default), ``entropy`` (the range
that minimises the KL divergence of the quantized activation histogram) or ``percentile`` (99.999 % of |x|).
``reduce_range`` (7-bit weights) is on by default, as ONNX Runtime advises for CPUs without VNNI, whose
u8 x s8 kernels saturate int16 sums of full-range weights: a file must compute the same on every CPU it is
deployed to. The last layer (the logits) stays FP32 by default, the first conv with ``fp32_first``. The
measurements behind these defaults are in benchmarks/RESULTS.md ("INT8 defaults").
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from torch import Tensor

from wascompress.data import BatchLoader
from wascompress.data.datasets import Images
from wascompress.errors import ConfigError
from wascompress.export.onnx_graph import INPUT_NAME, ExportError, check_graph, onnx_bytes, session

log = logging.getLogger(__name__)

QUANTIZE_TYPES = ("int8",)
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
DEFAULT_CALIBRATION = "minmax"
DEFAULT_CALIBRATION_IMAGES = 256
DEFAULT_MIN_AGREEMENT = 0.99
CALIBRATION_BATCH = 32  # images per calibration run; ranges are merged batch by batch (bounded memory)


@dataclass(frozen=True)
class QuantizeConfig:
    """How to quantize an export and how close to FP32 it must stay."""

    dtype: str = "int8"  # the only one: INT8 weights, UINT8 activations (ONNX Runtime's CPU advice)
    calibration: str = DEFAULT_CALIBRATION  # activation range: minmax, entropy or percentile
    calibration_images: int = DEFAULT_CALIBRATION_IMAGES  # training images the ranges are measured on
    min_agreement: float = DEFAULT_MIN_AGREEMENT  # share of validation images whose top-1 must match FP32's
    reduce_range: bool = True  # 7-bit weights: no int16 saturation on CPUs without VNNI
    per_channel: bool = True  # one weight scale per output channel
    fp32_first: bool = False  # keep the first weighted layer (the stem conv) in FP32
    fp32_last: bool = True  # keep the last weighted layer (the logits) in FP32

    def __post_init__(self) -> None:
        if self.dtype not in QUANTIZE_TYPES:
            raise ConfigError(f"--quantize {self.dtype} is not supported; choose from: {', '.join(QUANTIZE_TYPES)}")
        if self.calibration not in CALIBRATION_METHODS:
            raise ConfigError(f"--calibration must be one of {', '.join(CALIBRATION_METHODS)}, "
                              f"got {self.calibration!r}")
        if (isinstance(self.calibration_images, bool) or not isinstance(self.calibration_images, int)
                or self.calibration_images < 1):
            raise ConfigError(f"--calibration-images must be a positive integer, got {self.calibration_images!r}")
        if not 0 < self.min_agreement <= 1:
            raise ConfigError(f"--min-agreement must be a fraction in (0, 1], got {self.min_agreement!r}")

    def as_dict(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "format": "QDQ", "weights": "int8", "activations": "uint8",
                "per_channel": self.per_channel, "reduce_range": self.reduce_range,
                "calibration": self.calibration, "min_agreement": self.min_agreement, "fp32_first": self.fp32_first,
                "fp32_last": self.fp32_last}


@dataclass
class QuantizationData:
    """The images a quantized export needs: calibration (training images, in a fixed order), validation
    (top-1 agreement with FP32 is measured on it) and, optionally, test (accuracy of both)."""

    calibration: Tensor
    validation: Images
    test: Images | None = None


class _Batches:
    """ONNX Runtime's CalibrationDataReader protocol over fixed batches (``set_range`` lets the quantizer
    calibrate batch by batch)."""

    def __init__(self, images: np.ndarray) -> None:
        self.batches = [images[i:i + CALIBRATION_BATCH] for i in range(0, len(images), CALIBRATION_BATCH)]
        self.position, self.end = 0, len(self.batches)

    def __len__(self) -> int:
        return len(self.batches)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.position, self.end = start_index, end_index

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.position >= self.end:
            return None
        self.position += 1
        return {INPUT_NAME: self.batches[self.position - 1]}


def quantize_onnx(fp32: bytes, calibration: Tensor, config: QuantizeConfig) -> onnx.ModelProto:
    """The QDQ INT8 form of the FP32 graph ``fp32``, activation ranges measured on ``calibration``."""
    from onnxruntime.quantization import (
        CalibrationMethod, QuantFormat, QuantType, quant_pre_process, quantize_static)

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    if not len(calibration):
        raise ConfigError("INT8 quantization needs calibration images (training images of the run); got none")
    images = np.ascontiguousarray(calibration.detach().cpu().float().numpy())
    with tempfile.TemporaryDirectory(prefix="wascompress-quant.") as folder, _quiet():
        source, prepared, quantized = (Path(folder) / name for name in ("fp32.onnx", "prepared.onnx", "int8.onnx"))
        source.write_bytes(fp32)
        try:
            quant_pre_process(str(source), str(prepared))
            layers = [n.name for n in onnx.load(str(prepared)).graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
            kept = sorted({layers[i] for i, keep in ((0, config.fp32_first), (-1, config.fp32_last)) if keep}
                          if len(layers) > 2 else [])
            quantize_static(str(prepared), str(quantized), _Batches(images), quant_format=QuantFormat.QDQ,
                            per_channel=config.per_channel, reduce_range=config.reduce_range,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=methods[config.calibration], nodes_to_exclude=kept,
                            extra_options={"CalibStridedMinMax": 1})  # one batch at a time
        except Exception as err:  # noqa: BLE001  (ONNX Runtime's quantizer fails in many ways)
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ExportError(f"ONNX Runtime's quantizer failed: {message}") from None
        proto = onnx.load_from_string(quantized.read_bytes())
    _drop_unused_opsets(proto)
    return proto


@contextlib.contextmanager
def _quiet():
    """The quantizer prints its progress on stdout and logs it at INFO: keep both off the CLI's output
    (its warnings still show)."""
    disabled = logging.root.manager.disable
    logging.disable(max(disabled, logging.INFO))
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.disable(disabled)


def _drop_unused_opsets(proto: onnx.ModelProto) -> None:
    """The optimiser declares every domain ONNX Runtime knows; keep those the graph uses."""
    used = {node.domain for node in proto.graph.node} | {""}
    kept = [o for o in proto.opset_import if o.domain in used or o.domain == "ai.onnx"]
    del proto.opset_import[:]
    proto.opset_import.extend(kept)


def compare_top1(fp32: bytes, int8: bytes, data: Images, batch_size: int = 256, threads: int = 0) -> dict[str, Any]:
    """Top-1 of both graphs on ``data`` (ONNX Runtime, CPU): how often they agree and how often each is right."""
    sessions = session(fp32, threads), session(int8, threads)
    agree = right_fp32 = right_int8 = 0
    for images, labels in BatchLoader(data, batch_size, shuffle=False):
        feed = {INPUT_NAME: images.numpy()}
        a, b = (s.run(None, feed)[0].argmax(1) for s in sessions)
        agree += int((a == b).sum())
        right_fp32 += int((a == labels.numpy()).sum())
        right_int8 += int((b == labels.numpy()).sum())
    n = len(data)
    return {"images": n, "agreement": agree / n, "fp32_top1": right_fp32 / n, "int8_top1": right_int8 / n}


def quantize_verified(fp32: bytes, data: QuantizationData, config: QuantizeConfig) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """Quantize ``fp32`` and check its top-1 agreement with it on the validation images; below
    ``config.min_agreement`` an :class:`ExportError`. Returns the INT8 graph and its verification."""
    if not len(data.validation):
        raise ConfigError("INT8 verification compares top-1 with FP32 on the validation images, and the run has "
                          "none (val-size 0)")
    proto = quantize_onnx(fp32, data.calibration, config)
    int8 = onnx_bytes(proto)
    check_graph(int8)
    validation = compare_top1(fp32, int8, data.validation)
    report = {**config.as_dict(), "calibration_images": len(data.calibration),
              "fp32_sha256": hashlib.sha256(fp32).hexdigest(), "fp32_bytes": len(fp32),
              "validation": validation, "agreement": validation["agreement"]}
    if validation["agreement"] < config.min_agreement:
        raise ExportError(f"INT8 verification failed: top-1 agrees with FP32 on {validation['agreement'] * 100:.2f}% "
                          f"of {validation['images']} validation images (< {config.min_agreement * 100:g}%); "
                          f"nothing written (try --calibration entropy or percentile, more --calibration-images, "
                          f"or a lower --min-agreement)")
    if data.test is not None and len(data.test):
        test = compare_top1(fp32, int8, data.test)
        report.update(test=test, fp32_test_top1=test["fp32_top1"], int8_test_top1=test["int8_top1"])
    log.debug("INT8: top-1 agreement %.4f on %d validation images", validation["agreement"], validation["images"])
    return proto, report
