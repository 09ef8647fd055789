"""Input geometry: the image size a run trains at, and so the input shape its models take.

As timm keeps a model's input size in its data config, a run's ``image_size`` (height, width) is a
training setting of its own, recorded in config.json and the checkpoint; export, evaluation and the
profiler read it back (``Checkpoint.input_shape``, :mod:`wascompress.checkpoint`), and ``--image-size H
[W]`` overrides it (its old spelling ``--input-shape C,H,W`` is read by :func:`parse_input_shape`). In code
``image_size`` is (H, W) and ``input_shape`` one image's (C, H, W). Runs recorded before the setting existed
trained at 32x32.
"""

from __future__ import annotations

from collections.abc import Sequence

from wascompress.errors import ConfigError

DEFAULT_IMAGE_SIZE = (32, 32)
SIZE_RANGE = (8, 4096)  # pixels per side


def image_size(value: int | Sequence[int]) -> tuple[int, int]:
    """``(height, width)`` from ``H``, ``[H]`` or ``[H, W]``; anything else is a one-line ConfigError."""
    sides = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    try:
        sides = list(sides)  # type: ignore[arg-type]
    except TypeError:
        raise ConfigError(f"image size must be H or H W (integers), got {value!r}") from None
    low, high = SIZE_RANGE
    if not 1 <= len(sides) <= 2 or not all(isinstance(s, int) and not isinstance(s, bool) and low <= s <= high
                                           for s in sides):
        raise ConfigError(f"image size must be H or H W, integers in [{low}, {high}], got {value!r}")
    return int(sides[0]), int(sides[-1])


def parse_input_shape(text: str) -> tuple[int, ...]:
    """``"3,224,224"`` (or ``3x224x224``) -> ``(3, 224, 224)``: one image's shape, without the batch."""
    try:
        dims = tuple(int(part) for part in text.replace("x", ",").split(","))
    except ValueError:
        raise ConfigError(f"input shape must be C,H,W (positive integers, e.g. 3,224,224), got {text!r}") from None
    if not dims or min(dims) < 1:
        raise ConfigError(f"input shape must be C,H,W (positive integers, e.g. 3,224,224), got {text!r}")
    return dims


def image_input_shape(shape: Sequence[int], what: str) -> tuple[int, int, int]:
    """``shape`` checked to be the ``(3, H, W)`` of RGB images (the only images the data sets hold)."""
    if len(shape) != 3 or shape[0] != 3:
        raise ConfigError(f"{what} takes RGB images: the input shape must be 3,H,W, got {','.join(map(str, shape))}")
    height, width = image_size(list(shape[1:]))
    return 3, height, width
