"""How pixels become a model's input: per-channel mean and std on the 0..1 scale, and where they came from.

A run normalises with the model's own statistics where it has them (timm's ``pretrained_cfg``: a model
trained on ImageNet expects ImageNet's), with a named preset or the user's ``--mean/--std``, else with the
statistics of its training images. Whatever it chose is recorded with the run and in every export's metadata
(:func:`preprocessing_record`), so a deployment feeds the file what it was trained on."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from wascompress.errors import ConfigError

PRESETS = {  # name -> (mean, std)
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "inception": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}
DATA = "data"  # the statistics of the training images
MODEL = "model"  # the model's own (timm's pretrained_cfg), else the data's
CHOICES = (MODEL, DATA, *PRESETS)


def check_stats(mean: Any, std: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``mean`` and ``std`` as 3-tuples of floats, std > 0; a one-line error otherwise."""
    try:
        mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
    except (TypeError, ValueError):
        raise ConfigError(f"mean and std need 3 numbers each, got {mean!r} and {std!r}") from None
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ConfigError(f"mean and std need 3 numbers each, std > 0, got {list(mean)} and {list(std)}")
    return mean, std


def with_stats(data: Any, mean: Any, std: Any) -> Any:
    """``data`` (an image set) normalised with ``mean`` / ``std`` instead of its own statistics."""
    mean, std = check_stats(mean, std)
    return replace(data, mean=mean, std=std)


def preprocessing_record(input_shape: Any, mean: Any, std: Any, source: str) -> dict[str, Any]:
    """What an export records about its input: layout, one image's shape, scale, mean, std and their source."""
    return {"layout": "NCHW", "input_shape": list(input_shape), "scale": "RGB pixel / 255",
            "mean": [round(float(m), 6) for m in mean], "std": [round(float(s), 6) for s in std], "source": source}


def stats_source(settings: Any, model_stats: tuple[tuple[float, ...], tuple[float, ...]] | None) -> str:
    """Where a run's normalisation came from, in words: ``settings`` its recorded training settings (a
    mapping with ``model``, ``normalize``, ``mean``, ``std``), ``model_stats`` its model's own, if any."""
    mean, std, chosen = settings.get("mean"), settings.get("std"), settings.get("normalize", DATA)
    if mean is None:
        return "statistics of the training images"
    stats = (tuple(mean), tuple(std))
    if chosen == MODEL and model_stats is not None and tuple(map(tuple, model_stats)) == stats:
        return f"{settings.get('model')}'s pretrained_cfg"
    if chosen in PRESETS and PRESETS[chosen] == stats:
        return f"preset {chosen}"
    return "given mean and std"
