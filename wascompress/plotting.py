"""Figures as PNG bytes: matplotlib (the ``plot`` extra) without a display, figure to bytes, closed."""

from __future__ import annotations

import io
from typing import Any

from wascompress.errors import ConfigError


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed); one clear line when it is missing."""
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("plotting needs matplotlib: pip install 'wascompress[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png_bytes(fig: Any, dpi: int = 100, metadata: dict[str, str] | None = None) -> bytes:
    """The figure as PNG (tight layout; ``metadata`` as PNG text chunks), then closed."""
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata=metadata)
    pyplot().close(fig)
    return buffer.getvalue()
