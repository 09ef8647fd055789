"""Per-channel mean and standard deviation of uint8 images: the normalisation statistics of a data set."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from wascompress.errors import DataError


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and (population) std of uint8 images [N, 3, H, W], on the 0..1 scale."""
    return chunk_stats(images.split(4096))


def chunk_stats(chunks: Iterable[torch.Tensor]) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """:func:`channel_stats` of the images of several chunks taken together (each read once, in turn)."""
    total = torch.zeros(3, dtype=torch.float64)
    squares = torch.zeros(3, dtype=torch.float64)
    count = 0
    for chunk in chunks:
        pixels = chunk.to(torch.float64).transpose(0, 1).reshape(3, -1) / 255.0
        total += pixels.sum(1).cpu()
        squares += pixels.square().sum(1).cpu()
        count += pixels.shape[1]
    if count == 0:
        raise DataError("cannot compute mean/std of an empty image set")
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(1e-12).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())  # type: ignore[return-value]
