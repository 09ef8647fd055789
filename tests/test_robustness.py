"""Accuracy under shifted inputs: drop rates by hand on a known case, and seeded reproducibility."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from wascompress.data import ImageSet
from wascompress.errors import ConfigError
from wascompress.models import create_model
from wascompress.robustness import parse_shift, robustness_rows, shift_images, shifted_accuracy


class LeftBrighter(nn.Module):
    """Predicts class 1 when the left half of the image is brighter than the right half, else class 0."""

    def forward(self, x):
        w = x.shape[-1]
        left, right = x[..., : w // 2].mean(dim=(1, 2, 3)), x[..., w // 2 :].mean(dim=(1, 2, 3))
        return torch.stack([(left <= right).float(), (left > right).float()], dim=1)


def known_set() -> ImageSet:
    images = torch.zeros(4, 3, 32, 32, dtype=torch.uint8)
    images[0, :, :, :16] = 255  # bright left: class 1
    images[1, :, :, 16:] = 255  # bright right: class 0
    images[2] = 128  # uniform: class 0 (left == right) - rotation does not change it
    images[3] = 128
    return ImageSet(images, torch.tensor([1, 0, 0, 0]), ("a", "b"), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def test_drop_rate_equals_hand_computation():
    rows = robustness_rows(LeftBrighter(), known_set(), [parse_shift("rotate:180")], mode="aom", seed=None,
                           calibration=None)
    clean, rotated = rows
    assert clean["accuracy"] == 1.0
    # a half turn swaps left and right: images 0 and 1 are now wrong, 2 and 3 (uniform) stay right
    assert rotated["accuracy"] == 0.5
    assert rotated["drop_points"] == pytest.approx(50.0) and rotated["drop_rate"] == pytest.approx(0.5)


def test_identity_shifts_keep_images():
    images = torch.randn(3, 3, 32, 32)
    g = torch.Generator().manual_seed(0)
    for text in ("rotate:0", "translate:0", "crop:1"):
        assert torch.allclose(shift_images(images, parse_shift(text), g), images, atol=1e-5), text


def test_translate_moves_by_whole_pixels():
    images = torch.arange(32.0).repeat(1, 3, 32, 1)  # column index as value
    out = shift_images(images, parse_shift("translate:0.1"), torch.Generator().manual_seed(3))
    row = out[0, 0, 5]
    nonzero = row[row != 0]
    steps = nonzero[1:] - nonzero[:-1]
    assert torch.equal(steps, torch.ones_like(steps))  # an intact run of columns, shifted


def test_same_seed_same_numbers():
    torch.manual_seed(0)
    model = create_model("tiny").eval()
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (40, 3, 32, 32), generator=g, dtype=torch.uint8)
    data = ImageSet(images, torch.randint(0, 10, (40,), generator=g), tuple("abcdefghij"), (0.5,) * 3, (0.25,) * 3)
    shift = parse_shift("rotate:0:45")
    a = shifted_accuracy(model, data, shift, seed=1)
    b = shifted_accuracy(model, data, shift, seed=1)
    assert a == b
    first = shift_images(torch.randn(2, 3, 32, 32), shift, torch.Generator().manual_seed(1))
    again = shift_images(torch.randn(2, 3, 32, 32), shift, torch.Generator().manual_seed(1))
    assert first.shape == again.shape


@pytest.mark.parametrize("text", ["shear:0.2", "rotate", "translate:1.5", "crop:0.9:0.2", "crop:0", "rotate:a:b"])
def test_bad_shifts(text):
    with pytest.raises(ConfigError):
        parse_shift(text)
