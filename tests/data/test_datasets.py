"""load_dataset for every source, ImageSet, and the seeded split_validation / limit."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from wascompress.data import (
    DATA_DIR_ENV,
    DATASETS,
    BatchLoader,
    ImageSet,
    channel_stats,
    limit,
    load_dataset,
    make_synthetic,
    split_validation,
)
from wascompress.errors import ConfigError, DataError


def _numbered(n: int) -> ImageSet:
    """n tiny images whose label is their index, so subsets are easy to trace."""
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 2, 2).contiguous()
    return ImageSet(images, torch.arange(n), tuple(str(i) for i in range(n)), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def _write_small_cifar(root: Path, variant: str, n: int = 4) -> None:
    rng = np.random.default_rng(0)
    if variant == "cifar10":
        folder, meta_name, label_key = root / "cifar-10-batches-py", "batches.meta", b"labels"
        files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        meta = {b"label_names": [f"c{i}".encode() for i in range(10)]}
    else:
        folder, meta_name, label_key = root / "cifar-100-python", "meta", b"fine_labels"
        files = ["train", "test"]
        meta = {b"fine_label_names": [f"f{i}".encode() for i in range(100)]}
    folder.mkdir(parents=True)
    for name in files:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), label_key: list(range(n))}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    (folder / meta_name).write_bytes(pickle.dumps(meta, protocol=2))


# --- names and CIFAR -------------------------------------------------------------------------------


def test_unknown_dataset_names_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"'mnist'.*cifar10, cifar100, imagefolder, synthetic"):
        load_dataset("mnist", None, train=True)
    assert DATASETS == ("cifar10", "cifar100", "imagefolder", "synthetic")


def test_bad_image_size_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="image size"):
        load_dataset("synthetic", None, train=True, image_size=0)


def test_cifar_without_data_dir_says_how_to_pass_it(monkeypatch) -> None:
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    with pytest.raises(DataError, match=DATA_DIR_ENV):
        load_dataset("cifar10", None, train=True)


def test_cifar10_from_environment_variable(tmp_path: Path, monkeypatch) -> None:
    _write_small_cifar(tmp_path, "cifar10")
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    train = load_dataset("cifar10", None, train=True)
    assert len(train) == 20 and train.images.shape == (20, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.labels.dtype == torch.int64 and train.classes == tuple(f"c{i}" for i in range(10))
    assert train.mean == (0.4914, 0.4822, 0.4465) and train.std == (0.2470, 0.2435, 0.2616)
    assert len(load_dataset("cifar10", None, train=False)) == 4


def test_cifar100_stats_and_resize(tmp_path: Path) -> None:
    _write_small_cifar(tmp_path, "cifar100")
    data = load_dataset("cifar100", tmp_path, train=True, image_size=16)
    assert data.images.shape == (4, 3, 16, 16) and data.num_classes == 100
    assert data.mean == (0.5071, 0.4865, 0.4409) and data.std == (0.2673, 0.2564, 0.2762)


# --- ImageSet, split_validation, limit -------------------------------------------------------------


def test_image_set_checks_its_tensors() -> None:
    with pytest.raises(DataError, match="uint8"):
        ImageSet(torch.zeros(2, 3, 4, 4), torch.zeros(2, dtype=torch.int64), ("a",), (0, 0, 0), (1, 1, 1))
    with pytest.raises(DataError, match="labels"):
        ImageSet(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(3).long(), ("a",), (0, 0, 0), (1, 1, 1))


def test_subset_keeps_metadata() -> None:
    data = _numbered(10)
    part = data.subset(torch.tensor([7, 2]))
    assert part.labels.tolist() == [7, 2] and part.images[:, 0, 0, 0].tolist() == [7, 2]
    assert part.classes == data.classes and part.mean == data.mean and part.std == data.std
    assert len(data.subset(data.labels % 2 == 0)) == 5


def test_split_validation_is_seeded_disjoint_and_sized() -> None:
    data = _numbered(100)
    train, val = split_validation(data, 20, seed=1)
    assert len(train) == 80 and len(val) == 20
    assert set(train.labels.tolist()).isdisjoint(val.labels.tolist())
    assert sorted(train.labels.tolist() + val.labels.tolist()) == list(range(100))
    again_train, again_val = split_validation(data, 20, seed=1)
    assert torch.equal(again_train.labels, train.labels) and torch.equal(again_val.labels, val.labels)
    assert not torch.equal(split_validation(data, 20, seed=2)[1].labels, val.labels)
    assert torch.equal(train.images[:, 0, 0, 0].long(), train.labels)  # images travel with their labels


def test_split_validation_edges() -> None:
    data = _numbered(10)
    train, val = split_validation(data, 0, seed=0)
    assert len(train) == 10 and len(val) == 0 and val.images.shape == (0, 3, 2, 2)
    for bad in (10, 11, -1):
        with pytest.raises(ConfigError, match="n_val"):
            split_validation(data, bad, seed=0)


def test_limit() -> None:
    data = _numbered(50)
    assert limit(data, None) is data and limit(data, 50) is data
    small = limit(data, 10, seed=3)
    assert len(small) == 10 and len(set(small.labels.tolist())) == 10
    assert torch.equal(limit(data, 10, seed=3).labels, small.labels)
    assert not torch.equal(limit(data, 10, seed=4).labels, small.labels)
    with pytest.raises(ConfigError, match="limit"):
        limit(data, 0)


# --- synthetic -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic() -> tuple[ImageSet, ImageSet]:
    return load_dataset("synthetic", None, train=True, seed=0), load_dataset("synthetic", None, train=False, seed=0)


def test_synthetic_shapes_and_balance(synthetic) -> None:
    train, test = synthetic
    assert train.images.shape == (2000, 3, 32, 32) and test.images.shape == (500, 3, 32, 32)
    assert torch.bincount(train.labels).tolist() == [200] * 10 and torch.bincount(test.labels).tolist() == [50] * 10
    assert train.num_classes == 10 and train.mean == test.mean and train.std == test.std
    mean, std = channel_stats(train.images)
    assert train.mean == pytest.approx(mean) and train.std == pytest.approx(std)


def test_synthetic_is_deterministic_per_seed(synthetic) -> None:
    train, test = synthetic
    again = make_synthetic(True, seed=0)
    assert torch.equal(again.images, train.images) and torch.equal(again.labels, train.labels)
    other = make_synthetic(True, seed=1)
    assert not torch.equal(other.images, train.images)
    assert not torch.equal(test.images[:100], train.images[:100])  # test draws different samples


@pytest.mark.slow
def test_synthetic_is_learnable_by_a_tiny_cnn(synthetic) -> None:
    train, test = synthetic
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.BatchNorm2d(32), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(32, 10),
    )  # fmt: skip
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    loader = BatchLoader(train, 64, shuffle=True, augment=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: threads only fight over the shared cores
    try:
        for epoch in range(2):
            loader.set_epoch(epoch)
            for images, labels in loader:
                loss = torch.nn.functional.cross_entropy(model(images), labels)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        model.eval()
        with torch.no_grad():
            correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in BatchLoader(test, 250, shuffle=False))
    finally:
        torch.set_num_threads(threads)
    assert correct / len(test) > 0.5  # chance is 0.1
