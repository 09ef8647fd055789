"""Compress a model someone already has, in one call: check everything, fine-tune the AOM and one DOM per MAC
budget, export every file verified (the original model first), profile them side by side and write a report.

The public API::

    from wascompress.pipeline import CompressConfig, compress

:func:`compress` runs a :class:`CompressConfig` into a folder (resumable; the ``wascompress compress``
command) and returns a :class:`CompressResult` with the files and their figures.
"""

from __future__ import annotations

from wascompress.pipeline.config import CompressConfig
from wascompress.pipeline.run import CompressResult, compress

__all__ = ["CompressConfig", "CompressResult", "compress"]
