"""Shadow weights: WAS attached to a model's conv layers through ``torch.nn.utils.parametrize``.

A :class:`ShadowWeight` parametrization sits on each selected conv's ``weight``. It stores the Plain
Weight (PW) as ``parametrizations.weight.original`` and returns either PW (no draw: AOM) or the Shadow
Weight that its current draw makes of PW. It never draws inside ``forward``: draws are made explicitly
by :func:`resample_` (training, from the run's generator) or :func:`use_dom_` (DOM seed N: a fresh
generator seeded with N, layers in module order), so the same checkpoint and seed give bit-identical SW
on any machine. Life cycle: :func:`apply_was_` -> train with :func:`resample_` -> :func:`use_pw_` /
:func:`use_dom_` to evaluate -> :func:`strip_was_` (plain model with PW) or :func:`freeze_dom_` (plain
model whose weights are the SW of a seed).
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from wascompress.errors import ConfigError
from wascompress.was.config import WASConfig
from wascompress.was.transforms import Draw, FittedTaps, FusedDraws, align_windows
from wascompress.was.window_conv import WindowConvForward

log = logging.getLogger(__name__)

LayerFilter = Callable[[str, nn.Conv2d], bool]
Draws = dict[str, tuple[Draw, ...]]


class ShadowWeight(nn.Module):
    """Parametrization of one conv weight: PW when ``draws`` is None, else the SW those draws make.

    The draws are small tuples of integers kept as a plain attribute (not a buffer), so applying them
    needs no device synchronisation, and a checkpoint holds PW only: a DOM SW is named by its seed.
    """

    def __init__(self, config: WASConfig, kernel: tuple[int, int], out_channels: int,
                 transforms: tuple[str, ...] | None = None) -> None:
        super().__init__()
        self.config = config
        self.kernel = kernel
        self.out_channels = out_channels
        self.transforms = config.transforms if transforms is None else transforms  # this layer's share of them
        self._draws: tuple[Draw, ...] | None = None
        self._fused: FusedDraws | None = None
        # fitted corrections of PW's kept taps, one per fitted DOM (wascompress.was.fitted): trained like PW
        self.fitted = nn.ParameterDict()

    @property
    def draws(self) -> tuple[Draw, ...] | None:
        """The current draws (None: PW)."""
        return self._draws

    @draws.setter
    def draws(self, draws: tuple[Draw, ...] | None) -> None:
        self._draws = draws
        self._fused = FusedDraws(draws, self.kernel) if draws is not None else None

    @property
    def fused(self) -> FusedDraws | None:
        """The current draws compiled (None: PW)."""
        return self._fused

    def forward(self, weight: Tensor) -> Tensor:
        fused = self._fused
        if fused is None:
            return weight
        if fused.fitted is not None:
            weight = weight + self.embedded_correction(fused)
        return fused(weight)

    def correction(self, fused: FusedDraws) -> Tensor:
        """The fitted correction the draws ``fused`` name, shaped as their window of PW's taps."""
        key = fused.fitted
        if key not in self.fitted:
            raise ConfigError(f"no fitted correction {key!r} on this layer (fitted: {sorted(self.fitted)})")
        delta = self.fitted[key]
        p = fused.placement
        if p is None or tuple(delta.shape[-2:]) != (p.height, p.width):
            shape = "no window" if p is None else f"a {p.height}x{p.width} window"
            raise ConfigError(f"fitted correction {key!r} holds {tuple(delta.shape[-2:])} taps but the draws "
                              f"keep {shape}")
        return delta

    def embedded_correction(self, fused: FusedDraws) -> Tensor:
        """:meth:`correction` placed where its taps lie in PW (zero elsewhere)."""
        delta = self.correction(fused)
        p = fused.placement
        kh, kw = self.kernel
        return F.pad(delta, (p.src_left, kw - p.src_left - p.width, p.src_top, kh - p.src_top - p.height))

    def sample(self, generator: torch.Generator, level: float | None = None) -> tuple[Draw, ...]:
        """Draw this layer's transforms from ``generator`` (does not change the current draw); ``level``: a
        shared size (see :meth:`WASConfig.sample`)."""
        return self.config.sample(generator, self.kernel, self.out_channels, self.transforms, level)

    def extra_repr(self) -> str:
        shown = "+".join(self.transforms) if self.transforms != self.config.transforms else self.config.describe()
        return f"{shown}, kernel={self.kernel}, draws={self.draws}"


# ----------------------------------------------------------------------------------------------------
# Selecting and attaching


def default_layer_rule(config: WASConfig) -> LayerFilter:
    """The default selection: convs whose larger kernel side is >= ``min_kernel``."""
    return lambda name, conv: max(conv.kernel_size) >= config.min_kernel


def select_layers(
    model: nn.Module, config: WASConfig, layer_filter: LayerFilter | None = None
) -> list[tuple[str, nn.Conv2d]]:
    """The conv layers WAS applies to, in module order.

    ``config.include`` globs (if any) replace the default rule (kernel >= ``min_kernel``, not the
    first conv when ``skip_first``); ``config.exclude`` globs and ``layer_filter`` then remove layers.
    A selection that is empty, or an include pattern that matches no conv, raises :class:`ConfigError`.
    """
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ConfigError("the model has no Conv2d layer for WAS to transform")
    if config.include:
        names = [n for n, _ in convs]
        for pattern in config.include:
            if not fnmatch.filter(names, pattern):
                raise ConfigError(f"include pattern {pattern!r} matches no conv layer")
        chosen = [(n, m) for n, m in convs if any(fnmatch.fnmatchcase(n, p) for p in config.include)]
    else:
        rule = default_layer_rule(config)
        chosen = [(n, m) for i, (n, m) in enumerate(convs) if rule(n, m) and not (config.skip_first and i == 0)]
    chosen = [(n, m) for n, m in chosen if not any(fnmatch.fnmatchcase(n, p) for p in config.exclude)]
    if layer_filter is not None:
        chosen = [(n, m) for n, m in chosen if layer_filter(n, m)]
    for transform, patterns in config.layer_patterns.items():
        names = [n for n, _ in chosen]
        for pattern in patterns:
            if not fnmatch.filter(names, pattern):
                raise ConfigError(f"transform layer pattern {transform}:{pattern} matches no WAS layer")
    chosen = [(n, m) for n, m in chosen if config.layer_transforms(n)]  # a layer no transform reaches runs PW
    if not chosen:
        raise ConfigError(
            f"the layer filter selects no conv layer (include={list(config.include)}, "
            f"exclude={list(config.exclude)}, min_kernel={config.min_kernel})"
        )
    return chosen


def apply_was_(model: nn.Module, config: WASConfig, layer_filter: LayerFilter | None = None) -> list[str]:
    """Attach a :class:`ShadowWeight` to each selected conv of ``model`` in place; returns their names.

    The model starts in AOM (every layer runs PW), so its output is unchanged until a draw is made.
    """
    if not config.enabled:
        raise ConfigError("WAS needs at least one transform (crop, translate, filter or rotate)")
    if has_was(model):
        raise ConfigError("the model already has WAS applied; strip it first")
    layers = select_layers(model, config, layer_filter)
    for name, conv in layers:
        kernel = (int(conv.kernel_size[0]), int(conv.kernel_size[1]))
        config.check_kernel(name, kernel)
        shadow = ShadowWeight(config, kernel, conv.out_channels, config.layer_transforms(name))
        parametrize.register_parametrization(conv, "weight", shadow)
        conv.forward = WindowConvForward(conv, shadow)  # a SW runs as its smaller conv (window_conv.py)
    log.debug("WAS %s on %d conv layers", config.describe(), len(layers))
    return [name for name, _ in layers]


def was_layers(model: nn.Module) -> dict[str, ShadowWeight]:
    """The model's shadow-weight parametrizations by layer name, in module order."""
    found: dict[str, ShadowWeight] = {}
    for name, module in model.named_modules():
        if parametrize.is_parametrized(module, "weight"):
            for p in module.parametrizations.weight:
                if isinstance(p, ShadowWeight):
                    found[name] = p
    return found


def has_was(model: nn.Module) -> bool:
    return bool(was_layers(model))


def was_config(model: nn.Module) -> WASConfig:
    """The configuration the model's WAS was applied with."""
    layers = was_layers(model)
    if not layers:
        raise ConfigError("the model has no WAS applied")
    return next(iter(layers.values())).config


# ----------------------------------------------------------------------------------------------------
# Drawing: training steps, AOM, DOM


def resample_(model: nn.Module, generator: torch.Generator) -> bool:
    """Draw new SW for every WAS layer; with probability ``1 - prob`` run PW instead.

    Returns whether this step uses SW. Call once per training step, before the forward pass.
    """
    layers = was_layers(model)
    if not layers:
        return False
    prob = next(iter(layers.values())).config.prob
    if prob < 1 and torch.rand((), generator=generator, dtype=torch.float64).item() >= prob:
        use_pw_(model)
        return False
    set_draws_(model, sample_draws(layers, generator))
    return True


def sample_draws(layers: dict[str, "ShadowWeight"], generator: torch.Generator) -> Draws:
    """One SW: each layer's draws, in module order; a ``shared`` configuration first draws the one size
    level every layer uses."""
    if not layers:
        return {}
    config = next(iter(layers.values())).config
    level = float(torch.rand((), generator=generator, dtype=torch.float64)) if config.shared else None
    return {name: layer.sample(generator, level) for name, layer in layers.items()}


def use_pw_(model: nn.Module) -> None:
    """AOM: every WAS layer runs its Plain Weight."""
    for layer in was_layers(model).values():
        layer.draws = None


def check_seed(seed: object) -> int:
    """A DOM seed is a non-negative integer."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"DOM seed must be a non-negative integer, got {seed!r}")
    return seed


def dom_draws(model: nn.Module, seed: int, fitted: str | None = None) -> Draws:
    """The draws DOM seed ``seed`` makes: a fresh generator, layers in module order; with the config's
    ``dom_align``, crop windows then re-placed so their shifts cancel (:func:`align_windows`); with
    ``fitted``, every layer also runs its fitted correction of that key (wascompress.was.fitted)."""
    generator = torch.Generator().manual_seed(check_seed(seed))
    layers = was_layers(model)
    draws = sample_draws(layers, generator)
    if not draws:
        raise ConfigError("DOM needs a model with WAS applied")
    if was_config(model).dom_align:
        aligned = align_windows([(draws[name], layer.kernel) for name, layer in layers.items()])
        draws = dict(zip(draws, aligned))
    return draws if fitted is None else with_correction(draws, fitted)


def with_correction(draws: Draws, key: str) -> Draws:
    """``draws`` with every layer also running its fitted correction ``key``."""
    return {name: tuple(d for d in layer if not isinstance(d, FittedTaps)) + (FittedTaps(key),)
            for name, layer in draws.items()}


def use_dom_(model: nn.Module, seed: int, fitted: str | None = None) -> Draws:
    """DOM: every WAS layer runs the SW that ``seed`` draws (with the fitted correction ``fitted``, if
    given). Returns the draws."""
    draws = dom_draws(model, seed, fitted)
    set_draws_(model, draws)
    return draws


def current_draws(model: nn.Module) -> dict[str, tuple[Draw, ...] | None]:
    return {name: layer.draws for name, layer in was_layers(model).items()}


def set_draws_(model: nn.Module, draws: dict[str, tuple[Draw, ...] | None]) -> None:
    for name, layer in was_layers(model).items():
        layer.draws = draws[name]


@contextlib.contextmanager
def shadow_mode(model: nn.Module, mode: str, seed: int | None = None, fitted: str | None = None
                ) -> Iterator[nn.Module]:
    """Temporarily run ``mode`` ("aom", or "dom" with ``seed`` and its fitted correction ``fitted``, if
    given); the previous draws come back after."""
    saved = current_draws(model)
    try:
        if mode == "aom":
            use_pw_(model)
        elif mode == "dom":
            if seed is None:
                raise ConfigError("DOM mode needs a seed")
            use_dom_(model, seed, fitted)
        else:
            raise ConfigError(f"mode must be 'aom' or 'dom', got {mode!r}")
        yield model
    finally:
        set_draws_(model, saved)


# ----------------------------------------------------------------------------------------------------
# Leaving WAS: plain models and plain state dicts


def _remove_all(model: nn.Module) -> None:
    """Remove every ShadowWeight parametrization, keeping the weight each currently computes."""
    for module in list(model.modules()):
        if parametrize.is_parametrized(module, "weight") and any(
            isinstance(p, ShadowWeight) for p in module.parametrizations.weight
        ):
            # parametrize gives each module a generated class and removing the last parametrization
            # deletes the property from that class, which a deep copy of the module still shares:
            # give this module a class of its own first, so the original and its copies stay intact
            cls = module.__class__
            module.__class__ = type(cls.__name__, cls.__bases__, dict(cls.__dict__))
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
            if isinstance(module.__dict__.get("forward"), WindowConvForward):
                del module.forward


def strip_was_(model: nn.Module) -> nn.Module:
    """Remove WAS in place, leaving a plain model with the Plain Weights."""
    use_pw_(model)
    _remove_all(model)
    return model


def freeze_dom_(model: nn.Module, seed: int, fitted: str | None = None) -> nn.Module:
    """Remove WAS in place, leaving a plain model whose conv weights are the SW that ``seed`` draws (with
    the fitted correction ``fitted``, if given)."""
    use_dom_(model, seed, fitted)
    _remove_all(model)
    return model


def freeze_draws_(model: nn.Module, draws: Draws) -> nn.Module:
    """Remove WAS in place, leaving a plain model whose conv weights are the SW ``draws`` make (a plan's)."""
    set_draws_(model, draws)
    _remove_all(model)
    return model


_ORIGINAL = ".parametrizations.weight.original"


def plain_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The model's state dict with PW under the plain names (``conv.weight``), as a stripped model has."""
    return {
        (k[: -len(_ORIGINAL)] + ".weight" if k.endswith(_ORIGINAL) else k): v.detach().clone()
        for k, v in model.state_dict().items()
    }


def load_plain_state_dict(model: nn.Module, state: dict[str, Tensor]) -> None:
    """Load a plain state dict (PW under ``conv.weight``) into a model with or without WAS."""
    renamed = {f"{name}{_ORIGINAL}" for name in was_layers(model)}
    mapped = {}
    for k, v in state.items():
        candidate = k[: -len(".weight")] + _ORIGINAL if k.endswith(".weight") else None
        mapped[candidate if candidate in renamed else k] = v
    model.load_state_dict(mapped)
