"""The one way the package opens an ONNX Runtime session: for verification, accuracy and timing alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CPU = "CPUExecutionProvider"


def make_session(model: str | Path | bytes, provider: str = CPU, threads: int = 0,
                 profile_prefix: str | Path | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` of ``model`` (a file or the serialized bytes) on ``provider``
    with ``threads`` intra-op threads (0: ONNX Runtime's default), quiet below errors. ``profile_prefix``:
    record ONNX Runtime's per-node profile there (read it back with ``session.end_profiling()``)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    # Sessions timed in turn must not compete: an idle session's threads would otherwise spin on the
    # cores during the next session's run (2x noise). Stop spinning when a run returns, but keep it
    # within a run, as a deployed session does: without it every op pays a thread wake-up, which
    # made a many-small-op resnet18 DOM export look 15 % slower at batch 1 than it runs.
    options.add_session_config_entry("session.force_spinning_stop", "1")
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = str(profile_prefix)
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), options, providers=[provider])
