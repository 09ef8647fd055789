"""WAS configuration: which transforms make the Shadow Weights, how they combine, which layers get them.

One frozen dataclass, validated on construction so that a bad value fails before any training starts,
with a message that names the setting and the value. It round-trips through a plain dict for
checkpoints and ``config.json``.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch

from wascompress.errors import ConfigError
from wascompress.was import transforms as T

TRANSFORM_ORDER = ("crop", "translate", "rotate", "filter")
"""The fixed order in which enabled transforms compose (the paper's Model-CT, Model-CTR)."""

CROP_MODES = ("zero", "resize")
POLICIES = ("compose", "choice")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_range(name: str, value: Any) -> tuple[float, float]:
    if not isinstance(value, (tuple, list)) or len(value) != 2 or not all(map(_is_number, value)):
        raise ConfigError(f"{name} must be two numbers LO HI, got {value!r}")
    lo, hi = float(value[0]), float(value[1])
    if not (0 < lo <= 1 and 0 < hi <= 1):
        raise ConfigError(f"{name} range must lie in (0, 1], got ({lo:g}, {hi:g})")
    if lo > hi:
        raise ConfigError(f"{name} range needs LO <= HI, got ({lo:g}, {hi:g})")
    return lo, hi


@dataclass(frozen=True)
class WASConfig:
    """How Shadow Weights are drawn. ``None`` disables a transform."""

    crop: tuple[float, float] | None = None  # area fraction of the kept window, in (0, 1]
    crop_mode: str = "zero"  # "zero": zero outside the window; "resize": reference bilinear resize
    translate: float | None = None  # max shift as a fraction of the kernel size, in [0, 1)
    filter: tuple[float, float] | None = None  # fraction of output filters kept, in (0, 1]
    rotate: bool = False  # random multiples of 90 degrees
    policy: str = "compose"  # "compose": all enabled, in TRANSFORM_ORDER; "choice": one per draw
    prob: float = 1.0  # chance that a training step uses SW at all (else PW)
    include: tuple[str, ...] = ()  # glob patterns of layer names to select (empty: default rule)
    exclude: tuple[str, ...] = ()  # glob patterns of layer names to leave alone
    min_kernel: int = 3  # default rule: convs whose larger kernel side is at least this ...
    skip_first: bool = True  # ... except the first conv of the model
    dom_align: bool = False  # DOM seeds place crop windows so their half-tap shifts cancel (training draws stay random)
    transform_layers: tuple[str, ...] = ()  # "TRANSFORM:GLOB": that transform only on WAS layers matching a glob
    shared: bool = False  # one size fraction per SW for every layer (crop area, filters kept), as a width multiplier

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen dataclass)
        if self.crop is not None:
            set_("crop", _check_range("crop", self.crop))
        if self.crop_mode not in CROP_MODES:
            raise ConfigError(f"crop mode must be one of {CROP_MODES}, got {self.crop_mode!r}")
        if self.translate is not None:
            if not _is_number(self.translate) or not 0 <= self.translate < 1:
                raise ConfigError(f"translate must be a fraction in [0, 1), got {self.translate!r}")
            set_("translate", float(self.translate))
        if self.filter is not None:
            set_("filter", _check_range("filter", self.filter))
        if not isinstance(self.rotate, bool):
            raise ConfigError(f"rotate must be true or false, got {self.rotate!r}")
        if self.policy not in POLICIES:
            raise ConfigError(f"WAS policy must be one of {POLICIES}, got {self.policy!r}")
        if not _is_number(self.prob) or not 0 <= self.prob <= 1:
            raise ConfigError(f"WAS probability must be in [0, 1], got {self.prob!r}")
        set_("prob", float(self.prob))
        for name in ("include", "exclude"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            if not all(isinstance(p, str) and p for p in value):
                raise ConfigError(f"{name} patterns must be non-empty strings, got {value!r}")
            set_(name, tuple(value))
        for name in ("dom_align", "shared"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if isinstance(self.transform_layers, str):
            set_("transform_layers", (self.transform_layers,))
        set_("transform_layers", tuple(self.transform_layers))
        for entry in self.transform_layers:
            self._split_transform_layer(entry)
        if not isinstance(self.min_kernel, int) or self.min_kernel < 1:
            raise ConfigError(f"min_kernel must be a positive integer, got {self.min_kernel!r}")

    @property
    def transforms(self) -> tuple[str, ...]:
        """The enabled transforms, in composition order."""
        enabled = {
            "crop": self.crop is not None,
            "translate": self.translate is not None,
            "rotate": self.rotate,
            "filter": self.filter is not None,
        }
        return tuple(name for name in TRANSFORM_ORDER if enabled[name])

    @property
    def enabled(self) -> bool:
        return bool(self.transforms)

    def _split_transform_layer(self, entry: object) -> tuple[str, str]:
        name, sep, pattern = entry.partition(":") if isinstance(entry, str) else ("", "", "")
        if not sep or not pattern:
            raise ConfigError(f"transform layers are given as TRANSFORM:GLOB, got {entry!r}")
        if name not in self.transforms:
            enabled = ", ".join(self.transforms) or "none"
            raise ConfigError(f"transform layers name {name!r}, which is not an enabled transform (enabled: {enabled})")
        return name, pattern

    @property
    def layer_patterns(self) -> dict[str, tuple[str, ...]]:
        """The transforms restricted to some layers, each with its globs (a transform not named: every layer)."""
        patterns: dict[str, tuple[str, ...]] = {}
        for entry in self.transform_layers:
            name, pattern = self._split_transform_layer(entry)
            patterns[name] = patterns.get(name, ()) + (pattern,)
        return patterns

    def layer_transforms(self, layer: str) -> tuple[str, ...]:
        """The enabled transforms that apply to the WAS layer named ``layer``, in composition order."""
        patterns = self.layer_patterns
        return tuple(t for t in self.transforms
                     if t not in patterns or any(fnmatch.fnmatchcase(layer, p) for p in patterns[t]))

    def check_kernel(self, layer: str, kernel: tuple[int, int]) -> None:
        """Fail early if a zero-mode crop range admits no window of this layer's kernel."""
        if "crop" in self.layer_transforms(layer) and self.crop_mode == "zero":
            if not T.zero_crop_shapes(kernel, self.crop):
                kh, kw = kernel
                fractions = sorted({h * w / (kh * kw) for h in range(1, kh + 1) for w in range(1, kw + 1)})
                shown = ", ".join(f"{f:.3f}" for f in fractions)
                raise ConfigError(
                    f"crop range {self.crop} admits no window of the {kh}x{kw} kernel of layer "
                    f"{layer!r} (area fractions possible: {shown})"
                )

    def sample(
        self, generator: torch.Generator, kernel: tuple[int, int], out_channels: int,
        transforms: tuple[str, ...] | None = None, level: float | None = None,
    ) -> tuple[T.Draw, ...]:
        """Draw the transforms of one layer (``transforms``, default all enabled ones; or one of them under
        ``choice``). ``level`` in [0, 1] fixes where in its range the crop area and the filters kept lie
        (a ``shared`` draw: the same for every layer) instead of drawing it."""
        names = self.transforms if transforms is None else transforms
        if self.policy == "choice" and len(names) > 1:
            names = (names[int(torch.randint(len(names), (), generator=generator))],)
        draws: list[T.Draw] = []
        for name in names:
            if name == "crop":
                area = None if level is None else self.crop[0] + (self.crop[1] - self.crop[0]) * level
                draws.append(T.sample_crop(generator, kernel, self.crop, resize=self.crop_mode == "resize",
                                           fraction=area))
            elif name == "translate":
                draws.append(T.sample_shift(generator, kernel, self.translate))
            elif name == "rotate":
                draws.append(T.sample_rotation(generator, kernel))
            elif name == "filter":
                kept = None if level is None else self.filter[0] + (self.filter[1] - self.filter[0]) * level
                draws.append(T.sample_filters(generator, out_channels, self.filter, kept=kept))
        return tuple(draws)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (lists for tuples) that :meth:`from_dict` reads back."""
        data = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "WASConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown WAS setting(s): {', '.join(sorted(unknown))}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)

    def describe(self) -> str:
        """A short human-readable summary, e.g. ``crop(0.4,0.6,zero)+translate(0.3)``."""
        parts = []
        for name in self.transforms:
            if name == "crop":
                parts.append(f"crop({self.crop[0]:g},{self.crop[1]:g},{self.crop_mode})")
            elif name == "translate":
                parts.append(f"translate({self.translate:g})")
            elif name == "rotate":
                parts.append("rotate")
            elif name == "filter":
                parts.append(f"filter({self.filter[0]:g},{self.filter[1]:g})")
        if not parts:
            return "none"
        text = ("|" if self.policy == "choice" else "+").join(parts)
        text = text if self.prob == 1 else f"{text}@p={self.prob:g}"
        text = f"{text} [{' '.join(self.transform_layers)}]" if self.transform_layers else text
        text = f"{text}, shared size" if self.shared else text
        return f"{text}, aligned DOM" if self.dom_align else text
