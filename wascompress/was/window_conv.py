"""Running a Shadow Weight at the cost of its non-zero taps.

A zero-mode crop or a translate leaves one window of taps per layer (the same in every filter), and a
filter keep leaves some output filters. A conv whose SW is such a window is exactly a smaller conv on an
input padded (or cropped) by the amounts :func:`window_pads` gives (docs/method.md §4), and a conv whose SW
keeps some filters is a conv with those filters only, the others' outputs being their bias. So a WAS
layer in a sub-network forward runs the h×w conv of the kept filters directly on a slice of PW
(:class:`WindowConvForward`) instead of the k×k conv of a masked weight: training and evaluating a
sub-network costs about its MACs, and the gradient still reaches PW through the slice. The exporter's
``ShrunkConv2d`` does the same with frozen weights.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def window_pads(
    kernel: tuple[int, int], padding: tuple[int, int], dilation: tuple[int, int],
    top: int, left: int, height: int, width: int,
) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) input padding of the taps ``top:top+height, left:left+width`` of a
    ``kernel`` conv with symmetric ``padding``, as a conv of their own; a negative amount is a crop."""
    kh, kw = kernel
    dh, dw = dilation
    ph, pw = padding
    return (pw - left * dw, pw - (kw - left - width) * dw, ph - top * dh, ph - (kh - top - height) * dh)


def pad_or_crop(x: Tensor, pads: tuple[int, int, int, int]) -> tuple[Tensor, tuple[int, int]]:
    """Apply the asymmetric part of ``pads`` (left, right, top, bottom) to ``x`` (slicing where negative,
    zero padding where positive); returns the input and the symmetric padding left for the conv."""
    left, right, top, bottom = pads
    sym_w = max(0, min(left, right))
    sym_h = max(0, min(top, bottom))
    left, right, top, bottom = left - sym_w, right - sym_w, top - sym_h, bottom - sym_h
    if min(left, right, top, bottom) < 0:
        h, w = x.shape[-2:]
        x = x[..., max(0, -top) : h - max(0, -bottom), max(0, -left) : w - max(0, -right)]
    extra = (max(0, left), max(0, right), max(0, top), max(0, bottom))
    if any(extra):
        x = F.pad(x, extra)
    return x, (sym_h, sym_w)


def supports_window(conv: nn.Conv2d) -> bool:
    """Whether ``conv`` can run a window of its kernel as a smaller conv (explicit zero padding)."""
    return isinstance(conv, nn.Conv2d) and conv.padding_mode == "zeros" and not isinstance(conv.padding, str)


class WindowConvForward:
    """The ``forward`` of a WAS conv: the smaller conv of the current draw's window and kept filters
    where the draw allows it, else the ordinary conv of the (masked) Shadow Weight.

    Set as the conv's instance ``forward`` by ``apply_was_`` (hooks still run) and removed with WAS.
    It holds the conv and its ShadowWeight; a deep copy of the conv copies both consistently.
    """

    def __init__(self, conv: nn.Conv2d, shadow: nn.Module) -> None:
        self.conv = conv
        self.shadow = shadow

    def __call__(self, x: Tensor) -> Tensor:
        conv = self.conv
        fused = self.shadow.fused
        plan = fused.window_plan() if fused is not None else None
        if plan is None or not supports_window(conv) or (plan.kept is not None and conv.groups > 1):
            # PW, a draw that zeroes no border or filter (or moves taps in ways a window cannot say), or a
            # filter subset of a grouped conv: the ordinary conv of the (masked) Shadow Weight
            return type(conv).forward(conv, x)
        p = plan.placement
        weight = conv.parametrizations.weight.original[
            :, :, p.src_top : p.src_top + p.height, p.src_left : p.src_left + p.width]
        if fused.fitted is not None:  # a fitted DOM: PW's window plus its correction
            weight = weight + self.shadow.correction(fused)
        bias = conv.bias
        index = None
        if plan.kept is not None:
            index = fused.kept_index(weight.device)
            weight = weight.index_select(0, index)
            bias = bias.index_select(0, index) if bias is not None else None
        pads = window_pads(tuple(conv.kernel_size), tuple(conv.padding), tuple(conv.dilation),
                           p.dst_top, p.dst_left, p.height, p.width)
        x, padding = pad_or_crop(x, pads)
        y = F.conv2d(x, weight, bias, conv.stride, padding, conv.dilation, conv.groups)
        if index is None:
            return y
        # a dropped filter is a zero filter: its output is its bias (zero without one), as in the masked conv
        full_shape = (y.shape[0], conv.out_channels, *y.shape[2:])
        base = y.new_zeros(full_shape) if conv.bias is None else conv.bias.view(1, -1, 1, 1).expand(full_shape)
        return base.index_copy(1, index, y)
