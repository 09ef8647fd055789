"""Reader for CIFAR-10 and CIFAR-100 in the original Python-pickle layout.

The batches are read either from the extracted folder (``cifar-10-batches-py/`` or
``cifar-100-python/``) or straight out of the ``.tar.gz`` archive in one forward pass (nothing is
extracted; only regular-file members with the exact expected names are read, so member paths are
never used to touch the disk). ``data_dir`` may be the folder that holds either of those, the
extracted folder itself, or the archive file. Every batch goes through the restricted unpickler and
is checked for shape and label range; any problem raises a one-line
:class:`~wascompress.errors.DataError`. There is no md5 check. ``download=True`` fetches the official
archive with torchvision's downloader when nothing is found locally, then reads it the same way.
"""

from __future__ import annotations

import logging
import posixpath
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wascompress.data.unpickle import load_pickle
from wascompress.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

IMAGE_SHAPE = (3, 32, 32)
_PIXELS = 3 * 32 * 32
_MAX_MEMBER_BYTES = 1 << 30  # a CIFAR-100 train file is ~160 MB; refuse anything absurd


@dataclass(frozen=True)
class CifarLayout:
    """Where one CIFAR variant keeps its files and which keys hold its labels."""

    name: str
    folder: str
    archive: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: bytes
    names_key: bytes
    num_classes: int
    torchvision_class: str


CIFAR10 = CifarLayout(
    name="CIFAR-10",
    folder="cifar-10-batches-py",
    archive="cifar-10-python.tar.gz",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_files=("test_batch",),
    meta_file="batches.meta",
    label_key=b"labels",
    names_key=b"label_names",
    num_classes=10,
    torchvision_class="CIFAR10",
)
CIFAR100 = CifarLayout(
    name="CIFAR-100",
    folder="cifar-100-python",
    archive="cifar-100-python.tar.gz",
    train_files=("train",),
    test_files=("test",),
    meta_file="meta",
    label_key=b"fine_labels",
    names_key=b"fine_label_names",
    num_classes=100,
    torchvision_class="CIFAR100",
)
LAYOUTS = {"cifar10": CIFAR10, "cifar100": CIFAR100}


@dataclass(frozen=True)
class CifarSplit:
    """One split as numpy arrays: ``images`` uint8 [N, 3, 32, 32], ``labels`` int64 [N]."""

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    source: str


def read_cifar(name: str, data_dir: str | Path, train: bool, *, download: bool = False) -> CifarSplit:
    """Read the train or test split of ``name`` ("cifar10" or "cifar100") from ``data_dir``."""
    if name not in LAYOUTS:
        raise ConfigError(f"unknown CIFAR variant {name!r}; choose one of: {', '.join(LAYOUTS)}")
    layout = LAYOUTS[name]
    root = Path(data_dir).expanduser()
    source = _locate(layout, root)
    if source is None:
        if not download:
            if not root.exists():
                raise DataError(f"{layout.name} data directory {root} does not exist")
            raise DataError(
                f"no {layout.name} data in {root}: expected the folder {layout.folder}/ or the archive {layout.archive}"
            )
        source = _download(layout, root)
    files = layout.train_files if train else layout.test_files
    wanted = (layout.meta_file, *files)
    if source.is_dir():
        raw = {member: _read_folder_file(source / member) for member in wanted}
    else:
        raw = _read_archive(source, layout, wanted)
    split = _assemble(layout, raw, files, source)
    logger.info("read %s %s: %d images from %s", layout.name, "train" if train else "test", len(split.labels), source)
    return split


def _locate(layout: CifarLayout, root: Path) -> Path | None:
    """The extracted folder or archive that ``root`` names or contains, or None."""
    if root.is_file():
        return root
    if not root.is_dir():
        return None
    if (root / layout.folder).is_dir():
        return root / layout.folder
    if (root / layout.meta_file).is_file() or root.name == layout.folder:
        return root
    if (root / layout.archive).is_file():
        return root / layout.archive
    return None


def _read_folder_file(path: Path) -> object:
    if not path.is_file():
        raise DataError(f"missing CIFAR file {path}")
    return load_pickle(path)


def _read_archive(archive: Path, layout: CifarLayout, wanted: tuple[str, ...]) -> dict[str, object]:
    """Unpickle the ``wanted`` members of ``layout.folder`` in one forward pass over ``archive``."""
    targets = {f"{layout.folder}/{member}": member for member in wanted}
    found: dict[str, object] = {}
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for info in tar:
                member = targets.get(_normalise(info.name))
                if member is None or not info.isfile():
                    continue
                if info.size > _MAX_MEMBER_BYTES:
                    raise DataError(f"{archive}: member {info.name} is implausibly large ({info.size} bytes)")
                fileobj = tar.extractfile(info)
                assert fileobj is not None  # regular files always have data
                payload = fileobj.read()
                if len(payload) != info.size:
                    raise DataError(f"{archive} is truncated: member {info.name} ends early")
                found[member] = load_pickle(payload, name=f"{archive}:{info.name}")
                if len(found) == len(wanted):
                    break
    except DataError:
        raise
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        reason = str(exc).splitlines()[0].rstrip(":") if str(exc) else type(exc).__name__
        raise DataError(f"{layout.name} archive {archive} is truncated or corrupt ({reason})") from exc
    missing = [f"{layout.folder}/{m}" for m in wanted if m not in found]
    if missing:
        raise DataError(f"{layout.name} archive {archive} has no member {', '.join(missing)}")
    return found


def _normalise(member_name: str) -> str:
    """Member name without a leading ``./`` or redundant separators (for matching only)."""
    name = posixpath.normpath(member_name.replace("\\", "/"))
    return name[2:] if name.startswith("./") else name


def _assemble(layout: CifarLayout, raw: dict[str, object], files: tuple[str, ...], source: Path) -> CifarSplit:
    classes = _class_names(layout, raw[layout.meta_file], source)
    images, labels = [], []
    for member in files:
        batch_images, batch_labels = _check_batch(layout, raw[member], f"{source}:{member}")
        images.append(batch_images)
        labels.append(batch_labels)
    all_images = images[0] if len(images) == 1 else np.concatenate(images)
    all_labels = labels[0] if len(labels) == 1 else np.concatenate(labels)
    return CifarSplit(all_images, all_labels, classes, str(source))


def _class_names(layout: CifarLayout, meta: object, source: Path) -> tuple[str, ...]:
    where = f"{source}:{layout.meta_file}"
    if not isinstance(meta, dict) or layout.names_key not in meta:
        raise DataError(f"{where} has no {layout.names_key!r} entry")
    names = meta[layout.names_key]
    if not isinstance(names, (list, tuple)) or len(names) != layout.num_classes:
        count = len(names) if isinstance(names, (list, tuple)) else type(names).__name__
        raise DataError(f"{where}: expected {layout.num_classes} class names in {layout.names_key!r}, got {count}")
    return tuple(n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names)


def _check_batch(layout: CifarLayout, batch: object, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate one unpickled batch and return images [N, 3, 32, 32] uint8 and labels [N] int64."""
    if not isinstance(batch, dict):
        raise DataError(f"{where} is not a CIFAR batch (a {type(batch).__name__}, not a dict)")
    for key in (b"data", layout.label_key):
        if key not in batch:
            raise DataError(f"{where} has no {key!r} entry")
    data = batch[b"data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _PIXELS:
        shape = data.shape if isinstance(data, np.ndarray) else type(data).__name__
        dtype = data.dtype if isinstance(data, np.ndarray) else "-"
        raise DataError(f"{where}: b'data' has shape {shape} and dtype {dtype}, expected (N, {_PIXELS}) uint8")
    try:
        labels = np.asarray(batch[layout.label_key], dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: {layout.label_key!r} is not a list of integers") from exc
    if labels.shape != (data.shape[0],):
        raise DataError(f"{where}: {layout.label_key!r} has shape {labels.shape}, expected ({data.shape[0]},)")
    if labels.size and (labels.min() < 0 or labels.max() >= layout.num_classes):
        raise DataError(
            f"{where}: labels must lie in [0, {layout.num_classes}), got {labels.min()}..{labels.max()}"
        )
    return data.reshape(-1, *IMAGE_SHAPE), labels


def _download(layout: CifarLayout, root: Path) -> Path:
    """Fetch the official archive into ``root`` with torchvision's downloader (needs internet)."""
    from torchvision import datasets
    from torchvision.datasets.utils import download_url

    dataset_class = getattr(datasets, layout.torchvision_class)
    root.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s into %s", layout.name, root)
    try:
        download_url(dataset_class.url, str(root), filename=dataset_class.filename, md5=dataset_class.tgz_md5)
    except Exception as exc:  # network problems come in many types
        raise DataError(f"could not download {layout.name} into {root}: {exc}") from exc
    archive = root / dataset_class.filename
    if not archive.is_file():
        raise DataError(f"downloading {layout.name} did not produce {archive}")
    return archive
