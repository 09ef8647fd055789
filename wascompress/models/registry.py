"""The model registry: every architecture is registered once under a name.

A registered builder takes ``num_classes`` and ``width`` (a channel multiplier) as keyword arguments
and returns an ``nn.Module`` for 32x32 RGB input. Tests and benchmarks iterate over
:func:`list_models`.
"""

from __future__ import annotations

from typing import Callable

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


def create_model(name: str, num_classes: int = 10, width: float = 1.0) -> nn.Module:
    """Build the registered model ``name``; unknown names and bad sizes raise :class:`ConfigError`.

    ``name`` may also be ``"package.module:factory"``: a user's model, built by calling
    ``factory(num_classes=...)`` (and ``width=...`` if the factory takes it).
    """
    if ":" in name:
        return _user_model(name, num_classes, width)
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}")
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}")
    if not isinstance(width, (int, float)) or isinstance(width, bool) or not 0 < width <= 4:
        raise ConfigError(f"width must be in (0, 4], got {width!r}")
    return _REGISTRY[name](num_classes=num_classes, width=float(width))


def _user_model(spec: str, num_classes: int, width: float) -> nn.Module:
    import importlib
    import inspect

    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"cannot load model factory {spec!r}: {err}") from None
    kwargs: dict[str, object] = {"num_classes": num_classes}
    if "width" in inspect.signature(factory).parameters:
        kwargs["width"] = width
    model = factory(**kwargs)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model factory {spec!r} returned {type(model).__name__}, not an nn.Module")
    return model
