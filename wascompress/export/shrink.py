"""Kernel shrinking: a conv whose kernel has layer-wide zero border rows/columns becomes a smaller conv.

A zero-mode crop or a translate leaves the same rows and columns zero in every filter of a layer
(docs/method.md §4). Taps ``top:top+h, left:left+w`` of a k×k kernel are exactly an h×w conv whose input
is padded by ``pad - top·dilation`` before and ``pad - (k - top - h)·dilation`` after along each axis;
a negative amount crops the input instead. :class:`ShrunkConv2d` is that conv; the ONNX export folds
its non-negative pads into the Conv node's own (asymmetric) ``pads`` and does a crop with a depthwise
one-hot conv (:func:`crop_conv`), not a Slice: ONNX Runtime's CPU EP runs convs in its blocked NCHWc
layout but a Slice in plain NCHW, so every Slice between two convs also costs two layout reorders. A
one-hot depthwise conv stays in the blocked layout: on resnet18 with crop + translate (7 crops) the DOM
export ran 9 % faster at batch 1 (3.32 -> 3.01 ms) and 6 % at batch 32 (71.1 -> 66.6 ms) than with
Slice (benchmarks/bench_export_latency.py, crop table). Its taps are counted as MACs like any conv's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wascompress.export.padded_conv import padded_conv2d
from wascompress.was.window_conv import window_pads as taps_pads

DEPTHWISE_FAST_PATH = (3, 3)
"""ONNX Runtime's CPU EP runs 3×3 depthwise convs on a tuned kernel, and depthwise convs are memory bound:
a crop before a shrunk depthwise conv (one more full pass over the input) costs about what the saved
taps gain. Measured here (benchmarks/bench_export_latency.py depthwise table, three full runs, ORT 1.31,
2 threads, medians over rounds, time relative to the 3×3 conv): windows that need no crop ran at
0.76-1.05 of the 3×3 time (most near 0.9), edge windows that need a crop at 0.86-1.13. So a 3×3
depthwise conv is shrunk only where no pad turns negative. Other kernels (dense convs, 5×5 depthwise) are always shrunk: there the
time follows the taps (128-channel 3×3 conv at 16×16, batch 32: 3×3 10.9 ms, 3×2 7.3 ms, 2×2 5.1 ms)."""


@dataclass(frozen=True)
class KernelWindow:
    """The part of a kernel that holds every non-zero tap."""

    top: int
    left: int
    height: int
    width: int

    @property
    def area(self) -> int:
        return self.height * self.width


def nonzero_window(weight: Tensor) -> KernelWindow | None:
    """The smallest window of ``weight`` [out, in, kh, kw] outside which every tap of every filter is
    zero; None if the whole weight is zero."""
    taps = (weight != 0).flatten(0, 1).any(dim=0)  # [kh, kw]
    rows = torch.nonzero(taps.any(dim=1)).flatten()
    cols = torch.nonzero(taps.any(dim=0)).flatten()
    if rows.numel() == 0:
        return None
    top, bottom = int(rows[0]), int(rows[-1]) + 1
    left, right = int(cols[0]), int(cols[-1]) + 1
    return KernelWindow(top, left, bottom - top, right - left)


def explicit_padding(conv: nn.Conv2d) -> tuple[int, int]:
    """The conv's symmetric padding as numbers (``'valid'`` is 0; ``'same'`` is refused by the caller)."""
    if conv.padding == "valid":
        return 0, 0
    return int(conv.padding[0]), int(conv.padding[1])


def window_pads(conv: nn.Conv2d, window: KernelWindow) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) padding of the input for the window's taps alone (negative: a crop)."""
    return taps_pads(tuple(conv.kernel_size), explicit_padding(conv), tuple(conv.dilation),
                     window.top, window.left, window.height, window.width)


def _crop_axis(before: int, after: int) -> tuple[int, int, int]:
    """(kernel size, dilation, index of the one tap) of a 1-D conv that drops ``before`` leading and
    ``after`` trailing elements: two taps for a crop on one side, three for equal crops on both sides."""
    if before == after == 0:
        return 1, 1, 0
    if after == 0:
        return 2, before, 1
    if before == 0:
        return 2, after, 0
    if before == after:
        return 3, before, 1
    return before + after + 1, 1, before


def crop_conv(channels: int, crops: tuple[int, int, int, int]) -> nn.Conv2d:
    """A depthwise conv that crops (left, right, top, bottom) >= 0 elements off a ``channels``-channel
    input: one tap of weight 1 per channel, the others 0 (see the module docstring for why not Slice)."""
    left, right, top, bottom = crops
    kh, dh, row = _crop_axis(top, bottom)
    kw, dw, col = _crop_axis(left, right)
    conv = nn.Conv2d(channels, channels, (kh, kw), dilation=(dh, dw), groups=channels, bias=False)
    conv.weight.requires_grad_(False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[:, :, row, col] = 1.0
    return conv


class ShrunkConv2d(nn.Module):
    """An h×w conv on an input padded (or cropped, for negative amounts) by ``pads`` =
    (left, right, top, bottom): equal to the original k×k conv whose taps outside the window are zero.
    A crop is done first by ``crop`` (a :func:`crop_conv`), the padding by the conv itself."""

    def __init__(self, conv: nn.Conv2d, window: KernelWindow) -> None:
        super().__init__()
        kh, kw = conv.kernel_size
        self.set_pads(window_pads(conv, window), conv.in_channels)
        self.conv = nn.Conv2d(
            conv.in_channels, conv.out_channels, (window.height, window.width), stride=conv.stride,
            padding=0, dilation=conv.dilation, groups=conv.groups, bias=True,
        )
        with torch.no_grad():  # a missing bias becomes a zero bias: the exported Conv always has one
            self.conv.weight.copy_(conv.weight[:, :, window.top : window.top + window.height,
                                               window.left : window.left + window.width])
            self.conv.bias.copy_(conv.bias if conv.bias is not None else torch.zeros(conv.out_channels))
        self.original_kernel = (kh, kw)

    def set_pads(self, pads: tuple[int, int, int, int], channels: int | None = None) -> None:
        """Pad (or, where negative, crop) the input by ``pads`` = (left, right, top, bottom) from now on."""
        self.pads = tuple(pads)
        channels = self.conv.in_channels if channels is None else channels
        self.crop = crop_conv(channels, self.crops) if any(self.crops) else None

    @property
    def crops(self) -> tuple[int, int, int, int]:
        """The (left, right, top, bottom) amounts cropped off the input (0 where it is padded)."""
        return tuple(max(0, -p) for p in self.pads)  # type: ignore[return-value]

    @property
    def conv_pads(self) -> tuple[int, int, int, int]:
        """The (left, right, top, bottom) zero padding the conv itself adds."""
        return tuple(max(0, p) for p in self.pads)  # type: ignore[return-value]

    def forward(self, x: Tensor) -> Tensor:
        if self.crop is not None:
            x = self.crop(x)
        c = self.conv
        if torch.onnx.is_in_onnx_export():  # one Conv node with asymmetric pads
            return padded_conv2d(x, c.weight, c.bias, list(self.conv_pads), list(c.stride), list(c.dilation), c.groups)
        return c(F.pad(x, self.conv_pads) if any(self.conv_pads) else x)  # hooks (MAC counters) see the inner conv

    def extra_repr(self) -> str:
        return f"from {self.original_kernel}, pads(l,r,t,b)={self.pads}"


def shrink_decision(conv: nn.Conv2d, window: KernelWindow | None) -> tuple[bool, str]:
    """Whether to replace ``conv`` by a :class:`ShrunkConv2d` of ``window``, and why."""
    kh, kw = conv.kernel_size
    if window is None:
        return False, "all-zero weight"
    if window.area == kh * kw:
        return False, "no zero border"
    if conv.padding == "same" or conv.padding_mode != "zeros":
        return False, f"padding {conv.padding!r}/{conv.padding_mode} not supported"
    depthwise = conv.groups == conv.in_channels == conv.out_channels and conv.groups > 1
    if depthwise and (kh, kw) == DEPTHWISE_FAST_PATH and min(window_pads(conv, window)) < 0:
        return False, (f"3x3 depthwise kept (its {window.height}x{window.width} window needs a crop, which costs "
                       "what the taps save on ONNX Runtime)")
    return True, f"{kh}x{kw} -> {window.height}x{window.width}"


@dataclass(frozen=True)
class KernelChange:
    layer: str
    kernel_before: tuple[int, int]
    kernel_after: tuple[int, int]
    pads: tuple[int, int, int, int] | None
    reason: str


def shrink_kernels_(model: nn.Module) -> list[KernelChange]:
    """Replace, in place, every Conv2d whose kernel has zero borders (and where it pays) by a smaller one."""
    changes = []
    inner = {id(m) for shrunk in model.modules() if isinstance(shrunk, ShrunkConv2d) for m in shrunk.modules()}
    for name, conv in list(model.named_modules()):
        if not isinstance(conv, nn.Conv2d) or id(conv) in inner:  # already shrunk (or its crop conv)
            continue
        window = nonzero_window(conv.weight.detach())
        take, reason = shrink_decision(conv, window)
        before = tuple(conv.kernel_size)
        if take:
            shrunk = ShrunkConv2d(conv, window)
            model.set_submodule(name, shrunk)
            changes.append(KernelChange(name, before, (window.height, window.width), shrunk.pads, reason))
        elif window is not None and window.area < before[0] * before[1]:
            changes.append(KernelChange(name, before, before, None, f"kept: {reason}"))
    return changes
