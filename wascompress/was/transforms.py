"""Weight transforms: how a Shadow Weight (SW) is made from a Plain Weight (PW).

Each transform comes in two halves (docs/method.md §3): a *sampler* that draws the
transform's parameters from a ``torch.Generator``, and a *pure function* that applies drawn parameters
to a conv weight ``[out, in/groups, kH, kW]``. One draw is shared by every filter of a layer, so the
zeroed rows/columns of a zero-mode crop or a translate are the same in every filter, which is what lets
a frozen SW be exported as a physically smaller convolution. All functions are differentiable in the
weight: the gradient of a loss computed with SW flows back into PW, and zeroed taps get zero gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

# ----------------------------------------------------------------------------------------------------
# Drawn parameters (one frozen dataclass per transform)


@dataclass(frozen=True)
class CropWindow:
    """A kernel window: rows ``top:top+height``, columns ``left:left+width``."""

    top: int
    left: int
    height: int
    width: int
    resize: bool = False  # True: window resized back to k x k (reference); False: taps outside zeroed


@dataclass(frozen=True)
class KernelShift:
    """An integer shift of the kernel taps, ``dy`` rows down and ``dx`` columns right, zero fill."""

    dy: int
    dx: int


@dataclass(frozen=True)
class Rotation:
    """A rotation of the kernel by ``quarter_turns`` x 90 degrees (counter-clockwise)."""

    quarter_turns: int


@dataclass(frozen=True)
class FilterKeep:
    """The output filters kept (sorted indices); every other filter is zeroed."""

    kept: tuple[int, ...]


@dataclass(frozen=True)
class FittedTaps:
    """Not a random draw: the layer's kept taps carry the fitted correction stored under ``key``
    (:mod:`wascompress.was.fitted`), added to PW before the layer's other draws are applied."""

    key: str


Draw = CropWindow | KernelShift | Rotation | FilterKeep | FittedTaps

# ----------------------------------------------------------------------------------------------------
# Pure functions


def crop_window(weight: Tensor, box: CropWindow) -> Tensor:
    """Keep the taps inside ``box`` (zero the rest), or resize the window back to k x k bilinearly."""
    kh, kw = weight.shape[-2:]
    window = weight[..., box.top : box.top + box.height, box.left : box.left + box.width]
    if box.resize:
        if (box.height, box.width) == (kh, kw):
            return weight
        flat = window.reshape(-1, 1, box.height, box.width)
        resized = F.interpolate(flat, size=(kh, kw), mode="bilinear", align_corners=False)
        return resized.reshape(weight.shape)
    pads = (box.left, kw - box.left - box.width, box.top, kh - box.top - box.height)
    return F.pad(window, pads)


def translate_kernel(weight: Tensor, shift: KernelShift) -> Tensor:
    """Move the taps by ``(dy, dx)``; taps shifted in from outside are zero."""
    kh, kw = weight.shape[-2:]
    dy, dx = shift.dy, shift.dx
    if abs(dy) >= kh or abs(dx) >= kw:
        return weight * 0  # every tap shifted out (zero gradient, but still a function of PW)
    kept = weight[..., max(0, -dy) : kh - max(0, dy), max(0, -dx) : kw - max(0, dx)]
    return F.pad(kept, (max(0, dx), max(0, -dx), max(0, dy), max(0, -dy)))


def rotate_kernel(weight: Tensor, rotation: Rotation) -> Tensor:
    """Rotate each kernel by a multiple of 90 degrees (exact on square kernels)."""
    turns = rotation.quarter_turns % 4
    return torch.rot90(weight, turns, dims=(-2, -1)) if turns else weight


def keep_filters(weight: Tensor, keep: FilterKeep) -> Tensor:
    """Zero every output filter not in ``keep.kept``."""
    mask = torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device)
    mask[list(keep.kept)] = 1
    return weight * mask.view(-1, *([1] * (weight.dim() - 1)))


def apply_draw(weight: Tensor, draw: Draw) -> Tensor:
    """Apply one drawn transform to ``weight``."""
    if isinstance(draw, CropWindow):
        return crop_window(weight, draw)
    if isinstance(draw, KernelShift):
        return translate_kernel(weight, draw)
    if isinstance(draw, Rotation):
        return rotate_kernel(weight, draw)
    if isinstance(draw, FilterKeep):
        return keep_filters(weight, draw)
    if isinstance(draw, FittedTaps):
        return weight  # the correction is added to PW by the layer's ShadowWeight, before the draws
    raise TypeError(f"not a weight-transform draw: {draw!r}")


def apply_draws(weight: Tensor, draws: tuple[Draw, ...]) -> Tensor:
    """Apply several draws in order (the composition of transforms)."""
    for draw in draws:
        weight = apply_draw(weight, draw)
    return weight


# ----------------------------------------------------------------------------------------------------
# Fusing a layer's draws into one operation (the training hot path)


@dataclass(frozen=True)
class Placement:
    """SW = the PW window at rows ``src_top:src_top+height`` (cols likewise) placed at ``dst_top``,
    ``dst_left``, every other tap zero. Zero-mode crops and shifts compose into one placement."""

    src_top: int
    src_left: int
    dst_top: int
    dst_left: int
    height: int
    width: int

    @classmethod
    def whole(cls, kernel: tuple[int, int]) -> "Placement":
        return cls(0, 0, 0, 0, kernel[0], kernel[1])

    def then_crop(self, box: CropWindow) -> "Placement":
        """Keep only the placed taps that fall inside ``box``."""
        top = max(self.dst_top, box.top)
        left = max(self.dst_left, box.left)
        bottom = min(self.dst_top + self.height, box.top + box.height)
        right = min(self.dst_left + self.width, box.left + box.width)
        return Placement(self.src_top + top - self.dst_top, self.src_left + left - self.dst_left, top, left,
                         max(0, bottom - top), max(0, right - left))

    def then_shift(self, shift: KernelShift, kernel: tuple[int, int]) -> "Placement":
        """Move the placed taps by ``shift``; taps leaving the kernel are dropped."""
        moved = Placement(self.src_top, self.src_left, self.dst_top + shift.dy, self.dst_left + shift.dx,
                          self.height, self.width)
        return moved.then_crop(CropWindow(0, 0, kernel[0], kernel[1]))


@dataclass(frozen=True)
class WindowPlan:
    """A layer's SW as a smaller conv: the PW taps of ``placement`` (at its destination in the kernel)
    and the output filters ``kept`` (None: all)."""

    placement: Placement
    kept: tuple[int, ...] | None


class FusedDraws:
    """A layer's draws compiled into the fewest tensor operations, equal to :func:`apply_draws`.

    Zero-mode crops, shifts and filter keeps fuse into a single multiplication by a mask (when the
    taps do not move) or one slice-and-pad plus a filter mask; draws with rotation or a resizing crop
    are applied one by one. Masks are built once per draw and device, not in every forward.
    """

    def __init__(self, draws: tuple[Draw, ...], kernel: tuple[int, int]) -> None:
        self.draws = draws
        self.kernel = kernel
        self.placement: Placement | None = Placement.whole(kernel)
        self.kept: tuple[int, ...] | None = None
        self.fitted: str | None = None  # the key of the fitted correction these draws use, if any
        for draw in draws:
            if isinstance(draw, FittedTaps):
                self.fitted = draw.key
            elif isinstance(draw, CropWindow) and not draw.resize and self.placement is not None:
                self.placement = self.placement.then_crop(draw)
            elif isinstance(draw, KernelShift) and self.placement is not None:
                self.placement = self.placement.then_shift(draw, kernel)
            elif isinstance(draw, FilterKeep):
                self.kept = draw.kept if self.kept is None else tuple(sorted(set(self.kept) & set(draw.kept)))
            else:
                self.placement = None  # rotation or resize: no fusion
        self._mask_key: tuple | None = None
        self._mask: Tensor | None = None
        self._index: Tensor | None = None

    def window_plan(self) -> WindowPlan | None:
        """The SW as a window of PW taps and a subset of filters, where that makes a smaller conv; None
        where it does not (no zero border and no dropped filter, no taps at all, rotation, resize)."""
        p = self.placement
        if p is None or p.height == 0 or p.width == 0:
            return None
        if (p.height, p.width) == self.kernel and self.kept is None:
            return None
        return WindowPlan(p, self.kept)

    def kept_index(self, device: torch.device) -> Tensor:
        """The kept filters as an index tensor on ``device`` (built once per draw and device)."""
        if self._index is None or self._index.device != device:
            self._index = torch.tensor(self.kept, dtype=torch.long, device=device)
        return self._index

    def _mask_for(self, weight: Tensor, taps: bool) -> Tensor | None:
        key = (weight.device, weight.dtype, weight.shape[0], taps)
        if key != self._mask_key:
            kh, kw = self.kernel
            p = self.placement
            shape = (weight.shape[0] if self.kept is not None else 1, 1, kh if taps else 1, kw if taps else 1)
            mask = torch.zeros(shape, dtype=weight.dtype) if taps else torch.ones(shape, dtype=weight.dtype)
            if taps:
                mask[:, :, p.dst_top : p.dst_top + p.height, p.dst_left : p.dst_left + p.width] = 1
            if self.kept is not None:
                dropped = torch.ones(shape[0], dtype=torch.bool)
                dropped[list(self.kept)] = False
                mask[dropped] = 0
            self._mask_key, self._mask = key, mask.to(weight.device)
        return self._mask

    def __call__(self, weight: Tensor) -> Tensor:
        p = self.placement
        if p is None:
            return apply_draws(weight, self.draws)
        if (p.src_top, p.src_left) == (p.dst_top, p.dst_left):  # taps stay where they are
            if (p.height, p.width) == self.kernel and self.kept is None:
                return weight
            return weight * self._mask_for(weight, taps=True)
        kh, kw = self.kernel
        if p.height == 0 or p.width == 0:
            return weight * 0
        window = weight[..., p.src_top : p.src_top + p.height, p.src_left : p.src_left + p.width]
        placed = F.pad(window, (p.dst_left, kw - p.dst_left - p.width, p.dst_top, kh - p.dst_top - p.height))
        return placed if self.kept is None else placed * self._mask_for(weight, taps=False)


# ----------------------------------------------------------------------------------------------------
# Aligning a DOM's windows


def window_shift(placement: Placement, kernel: tuple[int, int]) -> tuple[float, float]:
    """How far the centre of a placement's taps lies from the kernel centre, in taps (rows, columns).

    A 2x2 window of a 3x3 kernel is off-centre by half a tap: the layer's output moves by half a pixel
    of its input (Wu et al., NeurIPS 2019), and such shifts add up along a chain of layers.
    """
    return (placement.dst_top + placement.height / 2 - kernel[0] / 2,
            placement.dst_left + placement.width / 2 - kernel[1] / 2)


def _balanced_start(drift: float, size: int, window: int) -> int:
    """The window start along one axis that brings ``drift`` plus the window's shift nearest zero (ties:
    the lower start)."""
    slack = size - window
    return min(range(slack + 1), key=lambda p: (abs(drift + p - slack / 2), p))


def align_windows(
    layers: list[tuple[tuple[Draw, ...], tuple[int, int]]],
) -> list[tuple[Draw, ...]]:
    """Re-place the zero-mode crop windows of a sequence of layers so their shifts cancel.

    ``layers`` are (draws, kernel) in module order. Each window keeps its shape; its position along
    each axis is chosen to bring the running sum of shifts (in taps) nearest zero, so a 2x2 window of a
    3x3 kernel alternates between the top-left and bottom-right corner from one layer to the next, and
    the two convs of a residual branch cancel each other. Layers whose draws are not a crop (and filter
    keeps) are left as drawn, their shift counted in the running sum.
    """
    drift = [0.0, 0.0]
    aligned: list[tuple[Draw, ...]] = []
    for draws, kernel in layers:
        crops = [d for d in draws if isinstance(d, CropWindow)]
        pure_crop = (len(crops) == 1 and not crops[0].resize
                     and all(isinstance(d, (CropWindow, FilterKeep)) for d in draws))
        if pure_crop:
            box = crops[0]
            placed = CropWindow(_balanced_start(drift[0], kernel[0], box.height),
                                _balanced_start(drift[1], kernel[1], box.width), box.height, box.width)
            draws = tuple(placed if d is box else d for d in draws)
        placement = FusedDraws(draws, kernel).placement
        if placement is not None and placement.height and placement.width:
            dy, dx = window_shift(placement, kernel)
            drift = [drift[0] + dy, drift[1] + dx]
        aligned.append(draws)
    return aligned


# ----------------------------------------------------------------------------------------------------
# Samplers


def _uniform(generator: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * torch.rand((), generator=generator, dtype=torch.float64).item()


def _randint(generator: torch.Generator, lo: int, hi: int) -> int:
    """An integer in [lo, hi] inclusive."""
    return int(torch.randint(lo, hi + 1, (), generator=generator).item())


def zero_crop_shapes(kernel: tuple[int, int], scale: tuple[float, float]) -> list[tuple[int, int]]:
    """Window shapes (height, width) of a ``kernel`` whose area fraction lies in ``scale``."""
    kh, kw = kernel
    lo, hi = scale
    eps = 1e-9
    return [
        (h, w)
        for h in range(1, kh + 1)
        for w in range(1, kw + 1)
        if lo - eps <= h * w / (kh * kw) <= hi + eps
    ]


def sample_crop(
    generator: torch.Generator,
    kernel: tuple[int, int],
    scale: tuple[float, float],
    resize: bool = False,
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    fraction: float | None = None,
) -> CropWindow:
    """Draw a crop window of a ``kernel``-sized weight.

    The area fraction is drawn uniformly from ``scale`` (or is ``fraction``, given) and the aspect ratio
    log-uniformly from ``ratio``, as ``RandomResizedCrop`` does. In ``resize`` mode the rounded window is taken as is (10
    tries, then the whole kernel: the reference's behaviour). In zero mode the window's area fraction
    must lie in ``scale``: a draw whose rounded shape falls outside it is replaced by the admissible
    shape nearest in area (ties drawn at random).
    """
    kh, kw = kernel
    area = kh * kw
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    shape: tuple[int, int] | None = None
    target = 1.0
    for _ in range(10):
        target = _uniform(generator, *scale) if fraction is None else fraction
        aspect = math.exp(_uniform(generator, log_lo, log_hi))
        w = int(round(math.sqrt(target * area * aspect)))
        h = int(round(math.sqrt(target * area / aspect)))
        if 0 < w <= kw and 0 < h <= kh:
            shape = (h, w)
            break
    if resize:
        h, w = shape if shape is not None else (kh, kw)
    else:
        admissible = zero_crop_shapes(kernel, scale)
        if not admissible:
            raise ValueError(f"crop scale {scale} admits no window of a {kh}x{kw} kernel")
        if shape not in admissible:
            best = min(abs(a * b / area - target) for a, b in admissible)
            nearest = [s for s in admissible if abs(s[0] * s[1] / area - target) <= best + 1e-12]
            shape = nearest[_randint(generator, 0, len(nearest) - 1)]
        h, w = shape
    return CropWindow(_randint(generator, 0, kh - h), _randint(generator, 0, kw - w), h, w, resize)


def max_shift(kernel_size: int, fraction: float) -> int:
    """The largest shift in taps along an axis of ``kernel_size`` taps: ``round(fraction * k)``."""
    return int(round(fraction * kernel_size))


def sample_shift(generator: torch.Generator, kernel: tuple[int, int], fraction: float) -> KernelShift:
    """Draw an integer shift per axis as ``RandomAffine(translate=fraction)`` does on a kernel image.

    Each axis draws ``round(u)`` with ``u`` uniform in ``[-fraction*k, fraction*k]``, so a 3x3 kernel
    with fraction 0.3 shifts by -1, 0 or +1 taps with P(0) = 0.556.
    """
    kh, kw = kernel
    dx = int(round(_uniform(generator, -fraction * kw, fraction * kw)))
    dy = int(round(_uniform(generator, -fraction * kh, fraction * kh)))
    return KernelShift(dy, dx)


def sample_rotation(generator: torch.Generator, kernel: tuple[int, int]) -> Rotation:
    """Draw 0-3 quarter turns (0 or 2 on a non-square kernel, where 90 degrees changes the shape)."""
    if kernel[0] == kernel[1]:
        return Rotation(_randint(generator, 0, 3))
    return Rotation(2 * _randint(generator, 0, 1))


def sample_filters(
    generator: torch.Generator, out_channels: int, fraction: tuple[float, float], kept: float | None = None
) -> FilterKeep:
    """Draw a random subset of ``round(f * out_channels)`` filters (at least one), f uniform in range (or
    ``kept``, given)."""
    f = _uniform(generator, *fraction) if kept is None else kept
    n_keep = min(out_channels, max(1, int(round(f * out_channels))))
    chosen = torch.randperm(out_channels, generator=generator)[:n_keep]
    return FilterKeep(tuple(sorted(int(i) for i in chosen)))
