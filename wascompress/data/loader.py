"""Deterministic batching of a split: in memory (:class:`~wascompress.data.datasets.ImageSet`) or
streamed from an image folder (:class:`~wascompress.data.folder.FolderSet`), through one interface.

:class:`BatchLoader` keeps an in-memory split as uint8 on the target device and builds every batch with
a few tensor operations: index, crop/flip (one gather for the whole batch) and normalise. There is no
per-image Python or PIL work. A streamed split has each batch's files read and resized by a
``DataLoader``'s worker processes instead; what follows (crop/flip, normalise) is the same. Everything random in an epoch — the order, the crop offsets and the
flips — is drawn up front from one ``torch.Generator`` seeded from ``(seed, epoch)``, one draw per
position of the epoch, so an epoch is bit-identical when repeated, does not depend on the batch size
used to cut it, and can resume mid-way (:meth:`BatchLoader.resume_from`) without touching the images
of the skipped batches. With ``world_size > 1`` each rank takes every ``world_size``-th position of
the epoch order, padded by wrapping (as ``DistributedSampler`` does) so all ranks get equally many
batches.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from wascompress.data.datasets import Images, ImageSet
from wascompress.data.seeding import seeded_generator
from wascompress.errors import ConfigError

logger = logging.getLogger(__name__)

CROP_PADDING = 4  # pixels of zero (black) padding before the random crop, as in the standard CIFAR recipe


class BatchLoader:
    """Batches of ``(images float32 [B, 3, H, W] normalised, labels int64 [B])`` from a split.

    ``augment=True`` applies a random crop from the image padded with 4 black (zero) pixels on every
    side and a random horizontal flip, per image but in one batched operation.
    """

    def __init__(
        self,
        data: Images,
        batch_size: int,
        *,
        shuffle: bool,
        augment: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        device: str | torch.device = "cpu",
    ) -> None:
        _check_int("batch_size", batch_size, minimum=1)
        _check_int("world_size", world_size, minimum=1)
        _check_int("rank", rank, minimum=0)
        _check_int("seed", seed, minimum=None)
        if rank >= world_size:
            raise ConfigError(f"rank must be in [0, {world_size}) for world_size {world_size}, got {rank}")
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.augment = bool(augment)
        self.drop_last = bool(drop_last)
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self._skip = 0
        self._size = len(data)
        self._stream = None if isinstance(data, ImageSet) else data
        if isinstance(data, ImageSet):
            self._images = data.images.to(self.device)
            self._labels = data.labels.to(self.device)
        self._offset = torch.tensor(data.mean, device=self.device).view(1, 3, 1, 1) * 255.0
        self._scale = 1.0 / (torch.tensor(data.std, device=self.device).view(1, 3, 1, 1) * 255.0)
        logger.debug(
            "BatchLoader: %d images, batch %d, rank %d/%d, %d batches per epoch on %s",
            self._size, batch_size, rank, world_size, len(self), self.device,
        )

    @property
    def samples_per_rank(self) -> int:
        """Images this rank sees per epoch (including wrapped padding, before ``drop_last``)."""
        return math.ceil(self._size / self.world_size)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order and augmentation the next iteration yields."""
        _check_int("epoch", epoch, minimum=0)
        self.epoch = epoch

    def resume_from(self, batch_index: int) -> BatchLoader:
        """Make the next iteration start at ``batch_index`` of the current epoch; returns ``self``.

        The batches that follow are exactly those of a full pass; skipped ones cost no image work.
        """
        _check_int("batch_index", batch_index, minimum=0)
        if batch_index > len(self):
            raise ConfigError(f"batch_index must be at most {len(self)} (batches per epoch), got {batch_index}")
        self._skip = batch_index
        return self

    def __len__(self) -> int:
        per_rank = self.samples_per_rank
        return per_rank // self.batch_size if self.drop_last else math.ceil(per_rank / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        start, self._skip = self._skip, 0
        return self._batches(self.epoch, start)

    def _batches(self, epoch: int, start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        index, shifts, flips = self._epoch_plan(epoch)
        parts = [slice(b * self.batch_size, (b + 1) * self.batch_size) for b in range(start, len(self))]
        for part, (images, labels) in zip(parts, self._read([index[p] for p in parts])):
            if shifts is not None and flips is not None:
                images = crop_flip(images, shifts[part].to(self.device), flips[part].to(self.device), CROP_PADDING)
            yield self._normalise(images), labels

    def _read(self, batches: list[torch.Tensor]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """uint8 images and labels of each batch of positions, on the device."""
        if self._stream is not None:
            yield from self._stream.read(batches, self.device)
            return
        for positions in batches:
            positions = positions.to(self.device)
            yield self._images[positions], self._labels[positions]

    def _epoch_plan(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """This rank's image indices for ``epoch`` and, with augmentation, their crop offsets and flips."""
        generator = seeded_generator(self.seed, epoch)
        n = self._size
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        total = self.samples_per_rank * self.world_size
        if total > n:  # wrap around so every rank gets the same number of images
            order = order.repeat(math.ceil(total / n))[:total]
        shifts = flips = None
        if self.augment:
            shifts = torch.randint(0, 2 * CROP_PADDING + 1, (total, 2), generator=generator)
            flips = torch.randint(0, 2, (total,), generator=generator).bool()
            shifts, flips = shifts[self.rank :: self.world_size], flips[self.rank :: self.world_size]
        return order[self.rank :: self.world_size], shifts, flips

    def _normalise(self, images: torch.Tensor) -> torch.Tensor:
        return (images.to(torch.float32) - self._offset) * self._scale


def crop_flip(images: torch.Tensor, shifts: torch.Tensor, flips: torch.Tensor, padding: int) -> torch.Tensor:
    """Crop each image from its zero-padded copy at ``shifts[i] = (dy, dx)`` and mirror it if ``flips[i]``.

    ``images`` [B, C, H, W] (any dtype), ``shifts`` int [B, 2] in ``[0, 2 * padding]``, ``flips`` bool
    [B]. One gather does both, so the cost does not depend on how many distinct offsets there are.
    """
    batch, channels, height, width = images.shape
    padded = F.pad(images, (padding, padding, padding, padding)) if padding else images
    device = images.device
    rows = shifts[:, 0, None] + torch.arange(height, device=device)
    columns = torch.arange(width, device=device).expand(batch, width)
    columns = torch.where(flips[:, None], width - 1 - columns, columns) + shifts[:, 1, None]
    return padded[
        torch.arange(batch, device=device)[:, None, None, None],
        torch.arange(channels, device=device)[None, :, None, None],
        rows[:, None, :, None],
        columns[:, None, None, :],
    ]


def _check_int(name: str, value: object, *, minimum: int | None) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or (minimum is not None and value < minimum):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise ConfigError(f"{name} must be an integer{bound}, got {value!r}")
