"""Crop absorption: a shrunk conv's input crop done by the conv that produces that input.

A shrunk conv whose window lies beyond the padding crops its input first (:func:`.shrink.crop_conv`,
one extra op). When that input comes from another conv only through position-wise ops (BatchNorm in
eval mode, activations) and nothing else reads it, the producer can simply compute fewer output
positions: dropping ``c`` leading outputs of a conv with stride ``s`` is the same conv with ``c·s`` less
leading padding, and likewise at the trailing end. The crop op disappears and the producer does less
work. Where the producer's padding runs out, its own input crop grows if it has one (no new op);
otherwise, or where the data flow cannot be traced (``torch.fx``), the crop conv stays. Given a probe
input, every absorption is checked on it and undone if the model no longer runs or computes anything
else (on small feature maps, crops moved back through several convs can use up the whole map).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch
import torch.fx
from torch import Tensor, nn

from wascompress.export.shrink import KernelWindow, ShrunkConv2d

POSITION_WISE = (nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid,
                 nn.SiLU, nn.Sigmoid, nn.Tanh, nn.GELU, nn.Identity, nn.Dropout, nn.Dropout2d)
"""Modules that, in eval mode, map each position of a feature map on its own (so they commute with a crop)."""


@dataclass(frozen=True)
class CropAbsorption:
    consumer: str  # the shrunk conv whose crop op was removed
    producer: str  # the conv that now computes only the kept positions
    crops: tuple[int, int, int, int]  # (left, right, top, bottom) outputs of the producer no longer computed


class _Tracer(torch.fx.Tracer):
    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return isinstance(module, ShrunkConv2d) or super().is_leaf_module(module, qualified_name)


def _producer(node: torch.fx.Node, modules: dict[str, nn.Module], calls: Counter) -> torch.fx.Node | None:
    """The conv node that feeds ``node`` through single-user, position-wise modules, if there is one."""
    source = node.args[0] if node.args else None
    while isinstance(source, torch.fx.Node) and len(source.users) == 1:
        if source.op != "call_module" or calls[source.target] != 1:
            return None
        module = modules[source.target]
        if type(module) is nn.Conv2d or isinstance(module, ShrunkConv2d):
            return source
        if not isinstance(module, POSITION_WISE):
            return None
        source = source.args[0] if source.args else None
    return None


def _as_shrunk(conv: nn.Conv2d | ShrunkConv2d) -> ShrunkConv2d:
    if isinstance(conv, ShrunkConv2d):
        return conv
    kh, kw = conv.kernel_size
    return ShrunkConv2d(conv, KernelWindow(0, 0, kh, kw))


def _absorb(producer: ShrunkConv2d, crops: tuple[int, int, int, int]) -> bool:
    """Make ``producer`` skip ``crops`` (left, right, top, bottom) outputs, if that needs no new op.

    Skipping ``c`` outputs takes ``c·stride`` of the producer's padding on that side; where its padding
    is used up, a crop of its own input that it already has (a crop conv) grows instead.
    """
    sh, sw = producer.conv.stride
    wanted = tuple(p - c * s for p, c, s in zip(producer.pads, crops, (sw, sw, sh, sh)))
    if producer.crop is None and min(wanted) < 0:
        return False  # it would need a crop op of its own: nothing saved
    producer.set_pads(wanted)
    return True


def _same_output(model: nn.Module, probe: Tensor, reference: Tensor) -> bool:
    try:
        with torch.no_grad():
            out = model(probe)
    except RuntimeError:  # e.g. a kernel larger than what is left of its input
        return False
    scale = max(1.0, float(reference.abs().max()))
    return out.shape == reference.shape and float((out - reference).abs().max()) / scale <= 1e-4


def absorb_crops_(model: nn.Module, probe: Tensor | None = None) -> list[CropAbsorption]:
    """Move, in place, every shrunk conv's input crop into the conv producing that input, where exact
    (checked on ``probe``, where given)."""
    try:
        graph = _Tracer().trace(model)
    except Exception:  # data-dependent control flow and the like: keep the crop convs
        return []
    modules = dict(model.named_modules())
    reference = None
    if probe is not None:
        with torch.no_grad():
            reference = model(probe)
    calls = Counter(n.target for n in graph.nodes if n.op == "call_module")
    absorbed = []
    for node in graph.nodes:
        if node.op != "call_module" or calls[node.target] != 1:
            continue
        consumer = modules[node.target]
        if not isinstance(consumer, ShrunkConv2d) or consumer.crop is None:
            continue
        source = _producer(node, modules, calls)
        if source is None:
            continue
        original = modules[source.target]
        producer = _as_shrunk(original)
        crops, producer_pads, consumer_pads = consumer.crops, producer.pads, consumer.pads
        if not _absorb(producer, crops):
            continue
        consumer.set_pads(consumer.conv_pads)  # its input now arrives cropped: no crop op of its own
        if producer is not original:
            model.set_submodule(source.target, producer)
            modules[source.target] = producer
        if reference is not None and not _same_output(model, probe, reference):  # undo it
            consumer.set_pads(consumer_pads)
            producer.set_pads(producer_pads)
            model.set_submodule(source.target, original)
            modules[source.target] = original
            continue
        absorbed.append(CropAbsorption(node.target, source.target, crops))
    return absorbed
