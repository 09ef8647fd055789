"""PyTorch model -> ONNX bytes, deterministically, with metadata, optional sparse storage, and checks.

The same model always gives the same bytes: PyTorch's current (``torch.export``-based) ONNX exporter, the
legacy TorchScript one as the fallback, at a fixed opset (18), fixed
input/output names, a dynamic batch axis, metadata written in sorted order and nothing time-dependent.
``sparse_initializers`` moves initializers that get smaller as COO (int64 linear indices) into
``sparse_initializer``: a smaller file only — ONNX Runtime densifies them when it loads the model.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from typing import Any, Iterator

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper
from torch import nn

from wascompress.errors import WascompressError
from wascompress.export.padded_conv import ONNX_TRANSLATIONS, OPSET
from wascompress.onnx_session import make_session

log = logging.getLogger(__name__)
INPUT_NAME, OUTPUT_NAME = "input", "logits"


class ExportError(WascompressError):
    """An export that could not be made or did not pass verification."""


EXPORTERS = ("dynamo", "legacy")
"""``dynamo``: PyTorch's current, ``torch.export``-based exporter (onnxscript); ``legacy``: the TorchScript
exporter PyTorch deprecated in 2.9, kept as the fallback."""


EXPORTER_ENV = "WASCOMPRESS_ONNX_EXPORTER"


def default_exporter() -> str:
    """``$WASCOMPRESS_ONNX_EXPORTER`` (dynamo, legacy or auto), else ``auto``."""
    return os.environ.get(EXPORTER_ENV, "auto") or "auto"


def to_onnx(model: nn.Module, input_shape: tuple[int, int, int], exporter: str | None = None) -> onnx.ModelProto:
    """Export ``model`` (eval mode, CPU) with a dynamic batch axis at opset :data:`OPSET`.

    ``exporter``: ``dynamo``, ``legacy``, or ``auto`` (the current exporter, the legacy one where it
    fails); None: :func:`default_exporter`. The exporter used is named in the model's ``doc_string``.
    """
    exporter = exporter or default_exporter()
    if exporter not in ("auto", *EXPORTERS):
        raise ExportError(f"exporter must be auto, dynamo or legacy, got {exporter!r}")
    model = model.eval().cpu()
    if exporter in ("auto", "dynamo"):
        try:
            proto, used = _export_dynamo(model, input_shape), "dynamo"
        except Exception as err:  # noqa: BLE001  (any failure of the new exporter: fall back or report)
            if exporter == "dynamo":
                raise ExportError(f"the torch.export-based ONNX exporter failed: {str(err).splitlines()[0]}") from None
            log.info("the torch.export-based ONNX exporter failed (%s); using the legacy exporter",
                     str(err).splitlines()[0] if str(err) else type(err).__name__)
            proto, used = _export_legacy(model, input_shape), "legacy"
    else:
        proto, used = _export_legacy(model, input_shape), "legacy"
    proto.producer_name = "wascompress"
    proto.doc_string = f"exported by torch.onnx ({used} exporter)"
    from wascompress import __version__

    proto.producer_version = __version__
    return proto


def _export_dynamo(model: nn.Module, input_shape: tuple[int, int, int]) -> onnx.ModelProto:
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad(), warnings.catch_warnings(), _quiet_exporter():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model, (torch.zeros(2, *input_shape),), dynamo=True, opset_version=OPSET, input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME], dynamic_shapes=({0: batch},), custom_translation_table=ONNX_TRANSLATIONS,
            optimize=True, verbose=False,
        )
    proto = program.model_proto
    proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    return proto


def _export_legacy(model: nn.Module, input_shape: tuple[int, int, int]) -> onnx.ModelProto:
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (torch.zeros(1, *input_shape),), buffer, dynamo=False, opset_version=OPSET,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}, do_constant_folding=True,
        )
    return onnx.load_from_string(buffer.getvalue())


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The current exporter prints its progress on stdout: keep it off the CLI's output."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def set_metadata(proto: onnx.ModelProto, metadata: dict[str, Any]) -> None:
    """Replace the model's ``metadata_props`` with ``metadata`` (values as strings, keys sorted)."""
    del proto.metadata_props[:]
    for key in sorted(metadata):
        value = metadata[key]
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, metadata_value(value)


def metadata_value(value: Any) -> str:
    """How a metadata value is written: strings as they are, anything else as compact sorted JSON."""
    import json

    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))


def store_sparse_(proto: onnx.ModelProto) -> list[str]:
    """Move each initializer that is smaller in COO form (int64 linear indices) to ``sparse_initializer``."""
    moved = []
    graph = proto.graph
    for init in list(graph.initializer):
        array = numpy_helper.to_array(init)
        if array.dtype != np.float32 or array.size < 16:
            continue
        flat = array.reshape(-1)
        nonzero = np.flatnonzero(flat)
        if nonzero.size * (4 + 8) >= flat.size * 4:
            continue
        values = numpy_helper.from_array(flat[nonzero].astype(np.float32), init.name)
        indices = numpy_helper.from_array(nonzero.astype(np.int64), f"{init.name}_indices")
        graph.sparse_initializer.append(helper.make_sparse_tensor(values, indices, list(array.shape)))
        graph.initializer.remove(init)
        moved.append(init.name)
    return moved


def onnx_bytes(proto: onnx.ModelProto) -> bytes:
    return proto.SerializeToString(deterministic=True)


def check_graph(data: bytes, full_check: bool = True) -> None:
    """``onnx.checker`` (the full check adds shape inference, which does not accept a sparse initializer
    as an operator input: sparse-stored graphs are fully checked in their dense form, see exporter)."""
    try:
        onnx.checker.check_model(onnx.load_from_string(data), full_check=full_check)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        raise ExportError(f"the exported graph fails onnx.checker: {str(err).splitlines()[0]}") from None


def session(data: bytes, threads: int = 0) -> Any:
    """An ONNX Runtime session (CPU execution provider) of the model ``data`` (:func:`make_session`)."""
    return make_session(data, threads=threads)


def run_onnx(data: bytes, inputs: np.ndarray, threads: int = 0) -> np.ndarray:
    """Run the model on ONNX Runtime's CPU execution provider."""
    return session(data, threads).run(None, {INPUT_NAME: inputs})[0]


def verify(data: bytes, reference: nn.Module, inputs: list[torch.Tensor], tolerance: float = 1e-4,
           dense_data: bytes | None = None) -> dict[str, Any]:
    """Check the graph, then compare ONNX Runtime against ``reference`` on each batch of ``inputs`` (batch
    sizes may differ: the batch axis must be dynamic). Max abs difference after dividing by the output
    scale (max(1, max |reference|)) must be <= ``tolerance`` and top-1 must agree; else
    :class:`ExportError`. ``dense_data``: the same graph before sparse storage, for the full check."""
    check_graph(dense_data or data)
    if dense_data is not None:
        check_graph(data, full_check=False)
    reference = reference.eval()
    worst, checked, near_ties = 0.0, 0, 0
    for batch in inputs:
        with torch.no_grad():
            expected = reference(batch).numpy()
        got = run_onnx(data, batch.numpy())
        if got.shape != expected.shape:
            raise ExportError(f"verification failed: ONNX output shape {got.shape} != PyTorch {expected.shape}")
        scale = max(1.0, float(np.abs(expected).max()))
        difference = float(np.abs(got - expected).max()) / scale
        worst = max(worst, difference)
        if difference > tolerance:
            raise ExportError(f"verification failed: ONNX Runtime differs from PyTorch by {difference:.2e} "
                              f"(> {tolerance:g}, after output scale {scale:.3g})")
        decided = decided_rows(expected, tolerance * scale)
        mismatched = int((got.argmax(1) != expected.argmax(1))[decided].sum())
        if mismatched:
            raise ExportError(f"verification failed: top-1 differs on {mismatched} of {int(decided.sum())} inputs "
                              "whose top two PyTorch logits are further apart than the tolerance")
        checked += len(batch)
        near_ties += int((~decided).sum())
    return {"max_abs_diff_scaled": worst, "tolerance": tolerance, "inputs_checked": checked,
            "batch_sizes": sorted({len(b) for b in inputs}), "top1_identical": True,
            "top1_near_ties_skipped": near_ties, "onnx_checker": "full"}


def decided_rows(logits: np.ndarray, margin: float) -> np.ndarray:
    """Rows whose largest output exceeds the second largest by more than ``margin``: where ``margin``
    (the tolerance, in output units) could not swap the top-1, so it must agree. A near-tie is left to the
    max-difference check: a difference within the tolerance may legitimately swap it."""
    if logits.ndim != 2 or logits.shape[1] < 2:
        return np.ones(len(logits), dtype=bool)
    top2 = np.sort(logits, axis=1)[:, -2:]
    return (top2[:, 1] - top2[:, 0]) > 2 * margin
