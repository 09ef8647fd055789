"""A restricted unpickler for the CIFAR Python-pickle batches.

Unpickling can call any importable function, so the CIFAR files are never read with plain
:func:`pickle.load`. :class:`RestrictedUnpickler` resolves only the handful of globals that pickled
numpy arrays (written by Python 2 or 3, numpy 1 or 2, any protocol) and plain containers need; any
other global — ``os.system``, ``builtins.eval``, a class from some package — stops the load with a
:class:`~wascompress.errors.DataError` naming it, before anything is called.
"""

from __future__ import annotations

import _compat_pickle
import importlib
import io
import logging
import pickle
from pathlib import Path
from typing import IO, Any

from wascompress.errors import DataError

logger = logging.getLogger(__name__)

# (module, name) pairs a CIFAR pickle may reference. numpy 2 moved ``numpy.core`` to ``numpy._core``;
# old files name the former, files written by numpy 2 the latter, and both resolve to the same object.
_NUMPY_CORE = ("numpy.core", "numpy._core")
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    [("numpy", "ndarray"), ("numpy", "dtype")]
    + [(f"{core}.multiarray", name) for core in _NUMPY_CORE for name in ("_reconstruct", "scalar")]
    + [(f"{core}.numeric", "_frombuffer") for core in _NUMPY_CORE]
    # Protocol-2 pickles written by Python 3 encode ``bytes`` as ``_codecs.encode(str, "latin1")``.
    + [("_codecs", "encode")]
    # Harmless containers.
    + [("builtins", name) for name in ("set", "frozenset", "bytearray")]
)


def _resolve(module: str, name: str) -> Any:
    """Import an allowed global, mapping ``numpy.core`` to ``numpy._core`` where it exists."""
    for prefix in _NUMPY_CORE:
        if module.startswith(prefix + "."):
            suffix = module[len(prefix) :]
            try:
                return getattr(importlib.import_module("numpy._core" + suffix), name)
            except ImportError:  # numpy < 2 has no numpy._core
                return getattr(importlib.import_module("numpy.core" + suffix), name)
    return getattr(importlib.import_module(module), name)


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose :meth:`find_class` only hands out :data:`ALLOWED_GLOBALS`."""

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 names (``__builtin__.set``, ...) are read as their Python 3 equivalents, as pickle does.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) not in ALLOWED_GLOBALS:
            logger.warning("refused pickle global %s.%s", module, name)
            raise DataError(
                f"refusing to unpickle global {module}.{name}: only numpy arrays and plain containers are allowed"
            )
        return _resolve(module, name)


def load_pickle(source: str | Path | IO[bytes] | bytes, *, name: str | None = None) -> Any:
    """Load one pickle from a path, a binary file object or bytes with :class:`RestrictedUnpickler`.

    Byte strings stay ``bytes`` (``encoding="bytes"``), as the CIFAR files expect. A missing file, a
    truncated or corrupt pickle and a refused global all raise :class:`DataError`, whose message
    starts with ``name`` (default: the path or the file object's name).
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _load(io.BytesIO(source), name or "<bytes>")
    if isinstance(source, (str, Path)):
        path = Path(source)
        try:
            fileobj = path.open("rb")
        except OSError as exc:
            raise DataError(f"cannot read pickle {path}: {exc.strerror or exc}") from exc
        with fileobj:
            return _load(fileobj, name or str(path))
    return _load(source, name or str(getattr(source, "name", None) or "<file object>"))


def _load(fileobj: IO[bytes], label: str) -> Any:
    try:
        return RestrictedUnpickler(fileobj, encoding="bytes").load()
    except DataError as exc:
        raise DataError(f"{label}: {exc}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise DataError(f"{label} is not a valid pickle (truncated or corrupt): {type(exc).__name__}: {exc}") from exc
