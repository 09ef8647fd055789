"""The data of a run (``wascompress/data/run_data.py``): the splits its recorded settings name, the same on
every read, and the settings that choose them."""

from __future__ import annotations

import pytest
import torch

from wascompress.data import limit, load_dataset
from wascompress.data.run_data import DATA_SETTINGS, data_settings, load_splits
from wascompress.errors import ConfigError
from wascompress.train.config import TrainConfig

# small images: the synthetic task draws 2,000 training images whatever the limit
RECORDED = TrainConfig(dataset="synthetic", seed=1, image_size=(8, 12), limit_train=300, limit_test=100).to_dict()


def rows(images: torch.Tensor) -> set[bytes]:
    return {image.numpy().tobytes() for image in images}


def test_splits_of_recorded_settings():
    splits = load_splits(RECORDED)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (270, 30, 100)  # validation: 10 % of the limit
    assert splits.train.images.shape[1:] == (3, 8, 12) and splits.test.images.shape[1:] == (3, 8, 12)
    pool = limit(load_dataset("synthetic", None, train=True, seed=1, image_size=(8, 12)), 300, seed=1)
    train, val = rows(splits.train.images), rows(splits.val.images)
    assert not train & val and train | val == rows(pool.images)  # carved from the limited training set


def test_every_read_gives_the_same_images_and_the_seed_chooses_them():
    first, again = load_splits(RECORDED), load_splits(dict(RECORDED))
    for a, b in ((first.train, again.train), (first.val, again.val), (first.test, again.test)):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    other = load_splits({**RECORDED, "seed": 2})
    assert not torch.equal(other.val.images, first.val.images)


def test_validation_size_and_image_size_overrides():
    splits = load_splits({**RECORDED, "val_size": 0}, image_size=(10, 10))
    assert (len(splits.train), len(splits.val)) == (300, 0) and splits.train.images.shape[1:] == (3, 10, 10)
    assert len(load_splits({**RECORDED, "val_size": 50}).val) == 50
    with pytest.raises(ConfigError, match="val-size 300 leaves no training images \\(the training set has 300\\)"):
        load_splits({**RECORDED, "val_size": 300})


def test_data_settings_are_those_that_choose_the_images():
    assert data_settings(RECORDED) == {"dataset": "synthetic", "seed": 1, "image_size": [8, 12],
                                       "limit_train": 300, "limit_test": 100}  # None (data_dir, val_size) left out
    assert set(DATA_SETTINGS) <= set(RECORDED)  # each is a training setting
    assert load_splits(data_settings(RECORDED)).val.labels.tolist() == load_splits(RECORDED).val.labels.tolist()
