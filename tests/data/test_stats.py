import numpy as np
import pytest
import torch

from wascompress.data.stats import channel_stats, chunk_stats
from wascompress.errors import DataError


def random_images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 5, 7), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_channel_stats_match_numpy() -> None:
    images = random_images(50)
    mean, std = channel_stats(images)
    pixels = images.numpy().astype(np.float64).transpose(1, 0, 2, 3).reshape(3, -1) / 255.0
    assert mean == pytest.approx(tuple(pixels.mean(1)), abs=1e-12)
    assert std == pytest.approx(tuple(pixels.std(1)), abs=1e-12)


def test_chunks_taken_together_equal_the_whole() -> None:
    images = random_images(40, seed=1)
    whole = channel_stats(images)
    parts = chunk_stats(iter([images[:7], images[7:30], images[30:]]))  # read once, as a stream
    assert parts[0] == pytest.approx(whole[0], abs=1e-12) and parts[1] == pytest.approx(whole[1], abs=1e-12)


def test_empty_image_set_is_a_data_error() -> None:
    with pytest.raises(DataError, match="empty"):
        chunk_stats([])
