"""BatchLoader: seeded order, rank shards, batched augmentation, normalisation and mid-epoch resume."""

from __future__ import annotations

import pytest
import torch

from wascompress.data import BatchLoader, ImageSet
from wascompress.data.loader import CROP_PADDING, crop_flip
from wascompress.errors import ConfigError

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


def _data(n: int = 50, size: int = 8) -> ImageSet:
    """Random images whose label is their index, so every batch can be traced back."""
    g = torch.Generator().manual_seed(123)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    return ImageSet(images, torch.arange(n), tuple(str(i) for i in range(n)), MEAN, STD)


def _epoch(loader: BatchLoader, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader.set_epoch(epoch)
    return list(loader)


def _same(a, b) -> bool:
    return len(a) == len(b) and all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))


def _normalise(images: torch.Tensor) -> torch.Tensor:
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    return (images.float() / 255 - mean) / std


def test_batches_have_the_right_types_and_cover_the_epoch() -> None:
    loader = BatchLoader(_data(), 16, shuffle=True)
    batches = _epoch(loader, 0)
    assert len(loader) == len(batches) == 4
    assert [len(y) for _, y in batches] == [16, 16, 16, 2]
    assert all(x.dtype == torch.float32 and x.shape[1:] == (3, 8, 8) and y.dtype == torch.int64 for x, y in batches)
    assert sorted(torch.cat([y for _, y in batches]).tolist()) == list(range(50))
    assert len(BatchLoader(_data(), 16, shuffle=True, drop_last=True)) == 3


def test_same_seed_and_epoch_repeat_exactly_and_epochs_differ() -> None:
    data = _data()
    loader = BatchLoader(data, 16, shuffle=True, augment=True, seed=7)
    first = _epoch(loader, 3)
    assert _same(first, _epoch(loader, 3))
    assert _same(first, _epoch(BatchLoader(data, 16, shuffle=True, augment=True, seed=7), 3))
    assert not torch.equal(torch.cat([y for _, y in first]), torch.cat([y for _, y in _epoch(loader, 4)]))
    other_seed = _epoch(BatchLoader(data, 16, shuffle=True, augment=True, seed=8), 3)
    assert not torch.equal(torch.cat([y for _, y in first]), torch.cat([y for _, y in other_seed]))


def test_no_shuffle_keeps_order_and_normalises_exactly() -> None:
    data = _data()
    batches = _epoch(BatchLoader(data, 20, shuffle=False), 5)
    assert torch.cat([y for _, y in batches]).tolist() == list(range(50))
    torch.testing.assert_close(torch.cat([x for x, _ in batches]), _normalise(data.images), rtol=0, atol=1e-5)


@pytest.mark.parametrize("n", [60, 61, 2])
def test_ranks_get_disjoint_equal_shards(n: int) -> None:
    data, world = _data(n), 3
    loaders = [BatchLoader(data, 4, shuffle=True, seed=1, rank=r, world_size=world) for r in range(world)]
    shards = [torch.cat([y for _, y in _epoch(loader, 2)]) for loader in loaders]
    lengths = {len(s) for s in shards}
    assert lengths == {-(-n // world)}
    assert len({len(loader) for loader in loaders}) == 1
    together = torch.cat(shards).tolist()
    assert set(together) == set(range(n))
    if n % world == 0:
        assert len(together) == len(set(together))  # disjoint
    else:
        assert len(together) - len(set(together)) == world * lengths.pop() - n  # only the wrapped padding repeats


def test_augmentation_keeps_shapes_and_is_a_crop_or_flip_of_the_source() -> None:
    data = _data(40, size=8)
    loader = BatchLoader(data, 16, shuffle=True, augment=True, seed=3)
    batches = _epoch(loader, 1)
    assert [x.shape for x, _ in batches] == [(16, 3, 8, 8), (16, 3, 8, 8), (8, 3, 8, 8)]
    plain = {int(y): x for xb, yb in _epoch(BatchLoader(data, 16, shuffle=True, seed=3), 1) for x, y in zip(xb, yb)}
    changed = 0
    for xb, yb in batches:
        for x, y in zip(xb, yb):
            source = data.images[int(y)].unsqueeze(0)
            candidates = [
                _normalise(crop_flip(source, torch.tensor([[dy, dx]]), torch.tensor([flip]), CROP_PADDING))[0]
                for dy in range(2 * CROP_PADDING + 1)
                for dx in range(2 * CROP_PADDING + 1)
                for flip in (False, True)
            ]
            assert any(torch.allclose(x, c, rtol=0, atol=1e-5) for c in candidates)
            changed += not torch.equal(x, plain[int(y)])
    assert changed > 30  # almost every image moved or flipped


def test_crop_flip_pads_with_zeros_and_mirrors() -> None:
    image = torch.arange(1, 17, dtype=torch.uint8).view(1, 1, 4, 4)
    shifted = crop_flip(image, torch.tensor([[0, 0]]), torch.tensor([False]), padding=2)
    assert shifted[0, 0].tolist() == [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 2], [0, 0, 5, 6]]
    mirrored = crop_flip(image, torch.tensor([[2, 2]]), torch.tensor([True]), padding=2)
    assert torch.equal(mirrored, image.flip(3))


def test_resume_yields_the_same_tail_as_a_full_epoch() -> None:
    loader = BatchLoader(_data(), 8, shuffle=True, augment=True, seed=5, rank=1, world_size=2)
    full = _epoch(loader, 2)
    assert len(full) == 4
    loader.set_epoch(2)
    assert _same(list(loader.resume_from(3)), full[3:])
    assert _same(list(loader), full)  # the skip applies to one iteration only
    assert list(loader.resume_from(len(loader))) == []
    with pytest.raises(ConfigError, match="batch_index"):
        loader.resume_from(5)


def test_bad_settings_are_config_errors() -> None:
    data = _data()
    with pytest.raises(ConfigError, match="batch_size"):
        BatchLoader(data, 0, shuffle=True)
    with pytest.raises(ConfigError, match="rank"):
        BatchLoader(data, 4, shuffle=True, rank=2, world_size=2)
    with pytest.raises(ConfigError, match="epoch"):
        BatchLoader(data, 4, shuffle=True).set_epoch(-1)


def test_empty_set_has_no_batches() -> None:
    empty = _data().subset(torch.tensor([], dtype=torch.int64))
    loader = BatchLoader(empty, 4, shuffle=True, augment=True)
    assert len(loader) == 0 and list(loader) == []
