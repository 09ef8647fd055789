"""wascompress: Weight Augmentation (WAS) training, DOM/AOM export and profiling for CNNs.

``wascompress.compress(config, out)`` compresses a model you already have in one call
(:mod:`wascompress.pipeline`); it is imported on first use, so ``import wascompress`` stays light.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in ("compress", "CompressConfig", "CompressResult"):
        import wascompress.pipeline as pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'wascompress' has no attribute {name!r}")
