"""Image folders streamed from disk: classes and labels from train/, images read batch by batch (never the
whole folder), at any (H, W), through the same BatchLoader as in-memory sets and with the same batches."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.data.folders import write_image_folder
from wascompress.data import BatchLoader, FolderSet, ImageSet, channel_stats, limit, load_dataset, split_validation
from wascompress.data import folder as folder_module
from wascompress.errors import DataError


def _write_png(path: Path, colour: tuple[int, int, int], size: tuple[int, int]) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    root = tmp_path / "shapes"
    _write_png(root / "train" / "red" / "a.png", (255, 0, 0), (40, 30))
    _write_png(root / "train" / "red" / "nested" / "b.PNG", (200, 0, 0), (8, 8))
    _write_png(root / "train" / "blue" / "a.png", (0, 0, 255), (32, 32))
    _write_png(root / "train" / "green" / "a.png", (0, 255, 0), (16, 48))
    (root / "train" / "green" / "notes.txt").write_text("not an image")
    _write_png(root / "test" / "red" / "x.png", (250, 0, 0), (32, 32))
    _write_png(root / "test" / "green" / "y.png", (0, 250, 0), (64, 64))
    return root


def pixels(data: FolderSet) -> torch.Tensor:
    """Every image of a streamed set, uint8, in order."""
    return torch.cat([images for images, _ in data.read(list(torch.arange(len(data)).split(3)))])


def test_image_folder_train_and_test(image_folder: Path) -> None:
    train = load_dataset("imagefolder", image_folder, train=True, image_size=16, workers=0)
    assert isinstance(train, FolderSet) and train.classes == ("blue", "green", "red")
    assert train.labels.tolist() == [0, 1, 2, 2] and train.input_shape == (3, 16, 16)
    images = pixels(train)
    assert images.shape == (4, 3, 16, 16)
    assert images[0, :, 5, 5].tolist() == [0, 0, 255] and images[3, :, 5, 5].tolist() == [200, 0, 0]
    mean, std = channel_stats(images)
    assert train.mean == pytest.approx(mean) and train.std == pytest.approx(std)
    assert train.mean == pytest.approx(((255 + 200) / 4 / 255, 255 / 4 / 255, 255 / 4 / 255))
    test = load_dataset("imagefolder", image_folder, train=False, image_size=16, workers=0)
    assert test.classes == train.classes and test.mean == train.mean  # labels use train's class order
    assert test.labels.tolist() == [1, 2] and pixels(test)[1, :, 0, 0].tolist() == [250, 0, 0]


def test_any_height_and_width(image_folder: Path) -> None:
    train = load_dataset("imagefolder", image_folder, train=True, image_size=(24, 40), workers=0)
    assert train.input_shape == (3, 24, 40) and pixels(train).shape == (4, 3, 24, 40)
    images, _ = next(iter(BatchLoader(train, 4, shuffle=True, augment=True)))
    assert images.shape == (4, 3, 24, 40) and images.dtype == torch.float32


def test_val_fallback_and_errors(image_folder: Path) -> None:
    (image_folder / "test").rename(image_folder / "val")
    assert len(load_dataset("imagefolder", image_folder, train=False, workers=0)) == 2
    _write_png(image_folder / "val" / "purple" / "z.png", (128, 0, 128), (32, 32))
    with pytest.raises(DataError, match=r"purple does not exist in the train/ folder"):
        load_dataset("imagefolder", image_folder, train=False)
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("imagefolder", image_folder / "missing", train=True)
    with pytest.raises(DataError, match="imagefolder"):
        load_dataset("imagefolder", None, train=True)


@pytest.mark.parametrize("workers", [0, 1])
def test_an_unreadable_image_is_one_line_naming_it(image_folder: Path, workers: int) -> None:
    (image_folder / "train" / "blue" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match=r"^cannot read image .*broken\.png") as caught:
        load_dataset("imagefolder", image_folder, train=True, workers=workers)  # the statistics read it
    assert "Traceback" not in str(caught.value) and "\n" not in str(caught.value)


def test_read_batch_by_batch_never_whole(tmp_path: Path, monkeypatch) -> None:
    """Loading reads only the statistics sample (once for both splits); a loader reads each batch's files
    when it is needed."""
    root = write_image_folder(tmp_path / "f", classes=2, per_class=6, size=(20, 20))
    reads: list[str] = []
    original = folder_module.read_image
    monkeypatch.setattr(folder_module, "read_image", lambda path: reads.append(path) or original(path))
    monkeypatch.setattr(folder_module, "STATS_IMAGES", 4)
    train = load_dataset("imagefolder", root, train=True, image_size=16, workers=0)
    assert len(train) == 12 and len(reads) == 4
    test = load_dataset("imagefolder", root, train=False, image_size=16, workers=0)
    assert len(test) == 4 and len(reads) == 4 and test.mean == train.mean  # the statistics are remembered
    batches = iter(BatchLoader(train, 5, shuffle=True, augment=True, seed=3))
    next(batches)
    assert len(reads) == 4 + 5
    next(batches)
    assert len(reads) == 4 + 10


def test_streamed_batches_equal_in_memory_batches(tmp_path: Path) -> None:
    """Same seed, same order, crops and flips: the loader path does not change the data (workers or not)."""
    root = write_image_folder(tmp_path / "f", classes=3, per_class=5, size=(24, 32))
    streamed = load_dataset("imagefolder", root, train=True, image_size=(24, 32), workers=2)
    in_memory = ImageSet(pixels(streamed), streamed.labels, streamed.classes, streamed.mean, streamed.std)
    streamed, _ = split_validation(streamed, 3, seed=1)
    in_memory, _ = split_validation(in_memory, 3, seed=1)
    streamed, in_memory = limit(streamed, 10, seed=2), limit(in_memory, 10, seed=2)
    for rank in range(2):
        loaders = [BatchLoader(d, 4, shuffle=True, augment=True, seed=5, rank=rank, world_size=2)
                   for d in (streamed, in_memory)]
        for loader in loaders:
            loader.set_epoch(1)
            loader.resume_from(1)
        pairs = list(zip(*loaders))
        assert len(pairs) == len(loaders[1]) - 1 == 1
        for (a, la), (b, lb) in pairs:
            torch.testing.assert_close(a, b, rtol=0, atol=0)
            assert la.tolist() == lb.tolist()
