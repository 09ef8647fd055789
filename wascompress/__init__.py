"""wascompress: Weight Augmentation (WAS) training, DOM/AOM export and profiling for CNNs."""

from __future__ import annotations

__version__ = "0.1.0"
