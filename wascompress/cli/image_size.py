"""``--image-size H [W]``: the one name of the input geometry on every command (train, export, profile, models).

An image size is (height, width) in pixels; one value is a square. The channel count is never asked for:
export takes it from the checkpoint, profile from the ONNX graph's input. The old spellings stay as
hidden aliases of the same option for users' scripts: models' ``--input-size H [W]``, and export's and
profile's ``--input-shape C,H,W``, whose channel count is checked against the model's (and is the way to
give it where an ONNX graph leaves it symbolic).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

from wascompress.cli import add_option
from wascompress.data.geometry import image_input_shape, image_size, parse_input_shape
from wascompress.errors import ConfigError


@dataclass(frozen=True)
class RequestedSize:
    """What ``--image-size`` (or an old alias) asked for."""

    image_size: tuple[int, int]  # (height, width)
    channels: int | None = None  # only the old ``--input-shape C,H,W`` gives it


def add_image_size_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup, help: str,
                          aliases: Sequence[str] = ()) -> None:
    """``--image-size H [W]`` (with the old option strings ``aliases``); parse its value with
    :func:`requested_size`. The old ``--input-shape`` took exactly one value (``C,H,W``), so it stays a
    one-value option (a script's ``--input-shape 3,64,64 model.onnx`` keeps its positional arguments)."""
    one_value = [alias for alias in aliases if alias == "--input-shape"]
    add_option(parser, "--image-size", aliases=[a for a in aliases if a not in one_value], nargs="+",
               metavar=("H", "W"), help=help)
    for alias in one_value:
        parser.add_argument(alias, dest="image_size", action=_AsList, metavar="C,H,W", help=argparse.SUPPRESS)


class _AsList(argparse.Action):
    """Store an option's one value as the one-item list ``--image-size`` would have given."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        setattr(namespace, self.dest, [values])


def requested_size(values: Sequence[str] | None) -> RequestedSize | None:
    """``["64"]``, ``["64", "48"]`` or the old ``["3,64,48"]`` (also ``3x64x48``) as a :class:`RequestedSize`;
    None when the option was not given. Anything else is a one-line ConfigError."""
    if values is None:
        return None
    usage = f"--image-size takes H or H W (or the old C,H,W), positive integers; got {' '.join(values)!r}"
    if len(values) == 1 and ("," in values[0] or "x" in values[0]):
        dims = parse_input_shape(values[0])  # the old --input-shape C,H,W
    else:
        try:
            dims = tuple(int(v) for v in values)
        except ValueError:
            raise ConfigError(usage) from None
    if not 1 <= len(dims) <= (2 if len(values) > 1 else 3):
        raise ConfigError(usage)
    return RequestedSize(image_size(list(dims[-2:])), dims[0] if len(dims) == 3 else None)


def checkpoint_image_size(size: RequestedSize | None) -> tuple[int, int] | None:
    """The image size to export a checkpoint's model at; the old form's channel count must be the one a
    checkpoint's model takes (the RGB images of its data set)."""
    if size is None:
        return None
    if size.channels is not None:
        image_input_shape((size.channels, *size.image_size), "a checkpoint's model")
    return size.image_size
