"""The model registry: every architecture is registered once under a name.

A registered builder takes ``num_classes`` and ``width`` (a channel multiplier) as keyword arguments
and returns an ``nn.Module`` for 32x32 RGB input. Tests and benchmarks iterate over
:func:`list_models`. Models of other libraries are named by a prefix: ``timm:NAME`` (timm's
``create_model``), ``torchvision:NAME`` (torchvision's ``get_model``) or ``package.module:factory``; each
is built with random weights (never downloaded: trained weights come through ``--init-from``).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from torch import nn

from wascompress.errors import ConfigError

ModelBuilder = Callable[..., nn.Module]
_REGISTRY: dict[str, ModelBuilder] = {}


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator: register ``builder(num_classes=..., width=...)`` under ``name``."""

    def decorate(builder: ModelBuilder) -> ModelBuilder:
        if name in _REGISTRY:
            raise RuntimeError(f"model {name!r} is registered twice")
        _REGISTRY[name] = builder
        return builder

    return decorate


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_REGISTRY)


EXTERNAL_PREFIXES = ("timm:", "torchvision:")
_DOWNLOAD_KWARGS = ("pretrained", "weights", "weights_backbone", "pretrained_cfg_overlay", "checkpoint_path")


def create_model(name: str, num_classes: int = 10, width: float = 1.0,
                 kwargs: Mapping[str, Any] | None = None) -> nn.Module:
    """Build the model ``name`` with random weights; unknown names and bad sizes raise :class:`ConfigError`.

    ``name`` is a registered name, ``timm:NAME``, ``torchvision:NAME`` or ``"package.module:factory"`` (a
    user's model, built by calling ``factory(num_classes=...)``, and ``width=...`` if the factory takes it).
    ``kwargs`` go to the builder as keyword arguments (e.g. ``{"drop_rate": 0.1}`` for a timm model).
    """
    kwargs = dict(kwargs or {})
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}")
    downloads = sorted(k for k in kwargs if k in _DOWNLOAD_KWARGS)
    if downloads:
        raise ConfigError(f"model-kwargs {', '.join(downloads)}: wascompress never downloads weights; "
                          "start from trained weights with --init-from FILE")
    if name.startswith(EXTERNAL_PREFIXES):
        return _library_model(name, num_classes, kwargs)
    if ":" in name:
        return _user_model(name, num_classes, width, kwargs)
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}, or timm:NAME, "
                          "torchvision:NAME, package.module:factory")
    if not isinstance(width, (int, float)) or isinstance(width, bool) or not 0 < width <= 4:
        raise ConfigError(f"width must be in (0, 4], got {width!r}")
    return _built(name, lambda: _REGISTRY[name](num_classes=num_classes, width=float(width), **kwargs))


def _built(name: str, build: Callable[[], Any]) -> nn.Module:
    """Call a builder; a keyword it does not take is the user's mistake, one line."""
    try:
        model = build()
    except TypeError as err:
        raise ConfigError(f"cannot build model {name!r}: {err}") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model factory {name!r} returned {type(model).__name__}, not an nn.Module")
    return model


def _library_model(spec: str, num_classes: int, kwargs: dict[str, Any]) -> nn.Module:
    """``timm:NAME`` or ``torchvision:NAME``, random weights."""
    library, _, name = spec.partition(":")
    if library == "timm":
        try:
            import timm
        except ImportError:
            raise ConfigError(f"model {spec!r} needs timm: pip install 'wascompress[timm]'") from None
        if not timm.is_model(name):
            raise ConfigError(f"timm has no model {name!r} (timm.list_models() lists them)")
        return _built(spec, lambda: timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs))
    import torchvision

    if name not in torchvision.models.list_models():
        raise ConfigError(f"torchvision has no model {name!r} (torchvision.models.list_models() lists them)")
    return _built(spec, lambda: torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs))


def _user_model(spec: str, num_classes: int, width: float, kwargs: dict[str, Any]) -> nn.Module:
    import importlib
    import inspect

    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"cannot load model factory {spec!r}: {err}") from None
    call: dict[str, Any] = {"num_classes": num_classes, **kwargs}
    try:
        takes_width = "width" in inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin or C factory without a signature
        takes_width = False
    if takes_width and "width" not in call:
        call["width"] = width
    return _built(spec, lambda: factory(**call))


def model_normalization(name: str) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The mean and std a model of another library expects (timm's ``pretrained_cfg``), or None (zoo models,
    torchvision and user factories carry none without their weights)."""
    if not name.startswith("timm:"):
        return None
    try:
        from timm.models import get_pretrained_cfg
    except ImportError:
        return None
    cfg = get_pretrained_cfg(name[len("timm:"):])
    if cfg is None or cfg.mean is None or cfg.std is None:
        return None
    return tuple(cfg.mean), tuple(cfg.std)
