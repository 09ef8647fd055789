"""Generated image folders for tests: ``train/<class>/`` and ``test/<class>/`` of small PNG or JPEG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

COLOURS = ((220, 40, 40), (40, 200, 60), (50, 60, 230), (200, 200, 40))


def write_image_folder(root: Path, *, classes: int = 3, per_class: int = 8, test_per_class: int = 2,
                       size: tuple[int, int] = (64, 64), fmt: str = "png", seed: int = 0) -> Path:
    """A learnable folder: class k is a noisy image tinted with colour k (files of ``size`` = (H, W))."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, count in (("train", per_class), ("test", test_per_class)):
        for k in range(classes):
            folder = root / split / f"class{k}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                noise = rng.normal(0, 40, (*size, 3))
                pixels = np.clip(np.array(COLOURS[k % len(COLOURS)]) + noise, 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:03d}.{fmt}")
    return root
