"""The CIFAR reader: the real CIFAR-10 archive and folder, small CIFAR-100 files, and every way to fail."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from wascompress.data.cifar import read_cifar
from wascompress.errors import ConfigError, DataError

# <repo>/../shared/data unless WASCOMPRESS_DATA_DIR says otherwise.
REAL_DATA_DIR = Path(os.environ.get("WASCOMPRESS_DATA_DIR") or Path(__file__).resolve().parents[3] / "shared" / "data")
REAL_ARCHIVE = REAL_DATA_DIR / "cifar-10-python.tar.gz"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
TRAIN_MEAN_255 = (125.306918046875, 122.950394140625, 113.86538318359375)


def _needs_real_archive() -> None:
    if not REAL_ARCHIVE.is_file():
        pytest.skip(f"real CIFAR-10 archive not found at {REAL_ARCHIVE} (set WASCOMPRESS_DATA_DIR)")


@pytest.fixture(scope="module")
def real_train():
    _needs_real_archive()
    return read_cifar("cifar10", REAL_DATA_DIR, train=True)


@pytest.fixture(scope="module")
def real_test():
    _needs_real_archive()
    return read_cifar("cifar10", REAL_ARCHIVE, train=False)  # data_dir may be the archive itself


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> Path:
    _needs_real_archive()
    root = tmp_path_factory.mktemp("cifar10_extracted")
    with tarfile.open(REAL_ARCHIVE) as tar:
        tar.extractall(root, filter="data")
    return root


# --- the real CIFAR-10 -----------------------------------------------------------------------------


def _check_train_facts(split) -> None:
    assert split.images.shape == (50_000, 3, 32, 32) and split.images.dtype == np.uint8
    assert split.labels.shape == (50_000,) and split.labels.dtype == np.int64
    assert split.classes == CIFAR10_CLASSES
    assert np.bincount(split.labels, minlength=10).tolist() == [5_000] * 10
    assert split.labels[:5].tolist() == [6, 9, 9, 4, 1]
    sums = split.images.transpose(1, 0, 2, 3).reshape(3, -1).sum(axis=1, dtype=np.int64)
    assert tuple(int(s) / (50_000 * 32 * 32) for s in sums) == TRAIN_MEAN_255


def _check_test_facts(split) -> None:
    assert split.images.shape == (10_000, 3, 32, 32) and split.labels.shape == (10_000,)
    assert split.classes == CIFAR10_CLASSES
    assert np.bincount(split.labels, minlength=10).tolist() == [1_000] * 10


def test_real_archive_train_split_has_the_readme_facts(real_train) -> None:
    _check_train_facts(real_train)
    assert real_train.source.endswith("cifar-10-python.tar.gz")


def test_real_archive_test_split(real_test) -> None:
    _check_test_facts(real_test)


def test_extracted_folder_gives_the_same_data(extracted: Path, real_train, real_test) -> None:
    folder = extracted / "cifar-10-batches-py"
    from_parent = read_cifar("cifar10", extracted, train=True)  # the folder that holds cifar-10-batches-py/
    assert from_parent.source == str(folder)
    _check_train_facts(from_parent)
    np.testing.assert_array_equal(from_parent.images, real_train.images)
    np.testing.assert_array_equal(from_parent.labels, real_train.labels)
    from_folder = read_cifar("cifar10", folder, train=False)  # the extracted folder itself
    _check_test_facts(from_folder)
    np.testing.assert_array_equal(from_folder.images, real_test.images)
    np.testing.assert_array_equal(from_folder.labels, real_test.labels)


def test_truncated_real_archive(tmp_path: Path) -> None:
    _needs_real_archive()
    with REAL_ARCHIVE.open("rb") as src:
        head = src.read(1 << 20)
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(head)
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_cifar("cifar10", tmp_path, train=True)


# --- small files in the CIFAR layouts --------------------------------------------------------------


def _batch(rng: np.random.Generator, n: int, label_keys: dict[bytes, int]) -> dict[bytes, object]:
    batch: dict[bytes, object] = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}
    for key, classes in label_keys.items():
        batch[key] = rng.integers(0, classes, n).tolist()
    return batch


def _write_cifar10(root: Path, n: int = 6, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps(_batch(rng, n, {b"labels": 10}), protocol=2))
    meta = {b"label_names": [c.encode() for c in CIFAR10_CLASSES], b"num_cases_per_batch": n}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


def _write_cifar100(root: Path, n_train: int = 20, n_test: int = 8, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    keys = {b"fine_labels": 100, b"coarse_labels": 20}
    for name, n in (("train", n_train), ("test", n_test)):
        (folder / name).write_bytes(pickle.dumps(_batch(rng, n, keys), protocol=4))
    meta = {
        b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
        b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)],
    }
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=4))
    return folder


def _tar_gz(folder: Path, archive: Path, arcname_prefix: str = "") -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=f"{arcname_prefix}{folder.name}/{path.name}")
    return archive


def test_cifar100_from_folder_and_archive(tmp_path: Path) -> None:
    folder = _write_cifar100(tmp_path / "extracted")
    expected = pickle.loads((folder / "train").read_bytes())
    train = read_cifar("cifar100", tmp_path / "extracted", train=True)
    assert train.images.shape == (20, 3, 32, 32)
    np.testing.assert_array_equal(train.images.reshape(20, -1), expected[b"data"])
    assert train.labels.tolist() == expected[b"fine_labels"]
    assert train.classes == tuple(f"fine{i}" for i in range(100))

    archive_dir = tmp_path / "archived"
    archive_dir.mkdir()
    _tar_gz(folder, archive_dir / "cifar-100-python.tar.gz", arcname_prefix="./")
    from_archive = read_cifar("cifar100", archive_dir, train=True)
    np.testing.assert_array_equal(from_archive.images, train.images)
    np.testing.assert_array_equal(from_archive.labels, train.labels)
    test = read_cifar("cifar100", archive_dir / "cifar-100-python.tar.gz", train=False)
    assert test.images.shape == (8, 3, 32, 32)
    assert test.labels.tolist() == pickle.loads((folder / "test").read_bytes())[b"fine_labels"]


def test_small_cifar10_folder_concatenates_batches_in_order(tmp_path: Path) -> None:
    folder = _write_cifar10(tmp_path)
    train = read_cifar("cifar10", tmp_path, train=True)
    labels = [pickle.loads((folder / f"data_batch_{i}").read_bytes())[b"labels"] for i in range(1, 6)]
    assert train.labels.tolist() == sum(labels, [])
    assert train.images.shape == (30, 3, 32, 32)
    first = pickle.loads((folder / "data_batch_1").read_bytes())[b"data"][0]
    np.testing.assert_array_equal(train.images[0, 0].ravel(), first[:1024])  # R plane first, row-major


def test_missing_folder_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"does not exist"):
        read_cifar("cifar10", tmp_path / "nowhere", train=True)
    with pytest.raises(DataError, match=r"no CIFAR-10 data in .*cifar-10-batches-py/ .*cifar-10-python\.tar\.gz"):
        read_cifar("cifar10", tmp_path, train=True)


def test_missing_batch_in_folder(tmp_path: Path) -> None:
    folder = _write_cifar10(tmp_path)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataError, match=r"missing CIFAR file .*data_batch_3"):
        read_cifar("cifar10", tmp_path, train=True)
    assert read_cifar("cifar10", tmp_path, train=False).labels.shape == (6,)


def test_missing_member_in_archive(tmp_path: Path) -> None:
    folder = _write_cifar10(tmp_path / "src")
    (folder / "test_batch").unlink()
    _tar_gz(folder, tmp_path / "cifar-10-python.tar.gz")
    with pytest.raises(DataError, match=r"has no member cifar-10-batches-py/test_batch"):
        read_cifar("cifar10", tmp_path, train=False)


def test_wrong_shapes_and_labels(tmp_path: Path) -> None:
    folder = _write_cifar10(tmp_path)
    bad = {b"data": np.zeros((6, 3000), np.uint8), b"labels": [0] * 6}
    (folder / "data_batch_2").write_bytes(pickle.dumps(bad, protocol=2))
    with pytest.raises(DataError, match=r"data_batch_2: b'data' has shape \(6, 3000\)"):
        read_cifar("cifar10", tmp_path, train=True)
    bad = {b"data": np.zeros((6, 3072), np.uint8), b"labels": [0] * 5}
    (folder / "data_batch_2").write_bytes(pickle.dumps(bad, protocol=2))
    with pytest.raises(DataError, match=r"data_batch_2: b'labels' has shape \(5,\), expected \(6,\)"):
        read_cifar("cifar10", tmp_path, train=True)
    bad = {b"data": np.zeros((6, 3072), np.uint8), b"labels": [0, 1, 2, 3, 4, 10]}
    (folder / "test_batch").write_bytes(pickle.dumps(bad, protocol=2))
    with pytest.raises(DataError, match=r"test_batch: labels must lie in \[0, 10\)"):
        read_cifar("cifar10", tmp_path, train=False)
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a", b"b"]}, protocol=2))
    with pytest.raises(DataError, match=r"batches.meta: expected 10 class names"):
        read_cifar("cifar10", tmp_path, train=False)


def test_truncated_and_corrupt_small_archives(tmp_path: Path) -> None:
    folder = _write_cifar10(tmp_path / "src", n=200)
    whole = _tar_gz(folder, tmp_path / "whole.tar.gz").read_bytes()
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(whole[: len(whole) * 2 // 3])
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz is truncated"):
        read_cifar("cifar10", tmp_path, train=False)
    archive.write_bytes(b"this is not a gzip file" * 100)
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz is truncated or corrupt"):
        read_cifar("cifar10", tmp_path, train=True)


def test_archive_member_with_forbidden_global(tmp_path: Path) -> None:
    folder = _write_cifar10(tmp_path / "src")
    (folder / "test_batch").write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    _tar_gz(folder, tmp_path / "cifar-10-python.tar.gz")
    with pytest.raises(DataError, match=r"test_batch: refusing to unpickle global os\.system"):
        read_cifar("cifar10", tmp_path, train=False)


def test_archive_ignores_members_outside_the_layout(tmp_path: Path) -> None:
    """Only regular files at exactly ``cifar-10-batches-py/<name>`` count; odd paths and links do not."""
    folder = _write_cifar10(tmp_path / "src")
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(folder.iterdir()):
            if path.name != "test_batch":
                tar.add(path, arcname=f"cifar-10-batches-py/{path.name}")
        payload = (folder / "test_batch").read_bytes()
        info = tarfile.TarInfo("../cifar-10-batches-py/test_batch")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
        link = tarfile.TarInfo("cifar-10-batches-py/test_batch")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(DataError, match=r"has no member cifar-10-batches-py/test_batch"):
        read_cifar("cifar10", tmp_path, train=False)
    assert read_cifar("cifar10", tmp_path, train=True).labels.shape == (30,)


def test_unknown_variant() -> None:
    with pytest.raises(ConfigError, match="cifar1000"):
        read_cifar("cifar1000", ".", train=True)


def test_download_fetches_the_archive_then_reads_it_ourselves(tmp_path: Path, monkeypatch) -> None:
    """download=True goes through torchvision's downloader (stubbed here: no internet) and our reader."""
    import torchvision.datasets.utils

    source = _write_cifar100(tmp_path / "server")
    calls = []

    def fake_download_url(url, root, filename=None, md5=None):
        calls.append((url, filename))
        _tar_gz(source, Path(root) / filename)

    monkeypatch.setattr(torchvision.datasets.utils, "download_url", fake_download_url)
    with pytest.raises(DataError, match="does not exist"):
        read_cifar("cifar100", tmp_path / "cache", train=False)
    test = read_cifar("cifar100", tmp_path / "cache", train=False, download=True)
    assert test.labels.shape == (8,) and calls == [(calls[0][0], "cifar-100-python.tar.gz")]
    assert calls[0][0].endswith("cifar-100-python.tar.gz")
    read_cifar("cifar100", tmp_path / "cache", train=True, download=True)
    assert len(calls) == 1  # found locally the second time
