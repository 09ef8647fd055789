"""What a plan can cut and what each cut costs in MACs: a model's convs, its coupled channel groups and an
exact count of a cut model's conv and linear MACs, without building the cut model.

Coupled channels come from torch-pruning's DependencyGraph: a group is every conv whose output channels
must go together (the producers of a residual addition, a depthwise conv and its producer) and the layers
that consume them. Channels are ranked within a group by torch-pruning's group L2 magnitude importance.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class ConvShape:
    """A conv's geometry in the dense model: channels, groups, kernel and output positions."""

    out_channels: int
    in_channels: int
    groups: int
    kernel: tuple[int, int]
    positions: int  # output height x width


@dataclass(frozen=True)
class ChannelGroup:
    """Output channels that go together: the producing convs, the convs and linear layers consuming them,
    and the channels ranked most important first."""

    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    channels: int
    ranking: tuple[int, ...]

    @property
    def name(self) -> str:
        return self.producers[0] if len(self.producers) == 1 else f"{self.producers[0]} (+{len(self.producers) - 1})"


@dataclass(frozen=True)
class Structure:
    """A model's convs (by name, module order), linear layers ``(in, out)`` and channel groups."""

    convs: dict[str, ConvShape]
    linears: dict[str, tuple[int, int]]
    groups: tuple[ChannelGroup, ...]

    def macs(self, windows: dict[str, tuple[int, int]], kept: dict[int, int]) -> int:
        """Conv and linear MACs with the window (height, width) given per conv and the channels kept per
        group index (the rest dense)."""
        return sum(self.layer_macs(windows, kept).values())

    def layer_macs(self, windows: dict[str, tuple[int, int]], kept: dict[int, int]) -> dict[str, int]:
        """:meth:`macs` layer by layer."""
        out_of = {p: kept.get(i, g.channels) for i, g in enumerate(self.groups) for p in g.producers}
        in_of = {c: kept.get(i, g.channels) for i, g in enumerate(self.groups) for c in g.consumers}
        found = {}
        for name, conv in self.convs.items():
            out = out_of.get(name, conv.out_channels)
            inputs = in_of.get(name, conv.in_channels)
            per_group = 1 if conv.groups > 1 else inputs  # depthwise: one input channel per filter
            height, width = windows.get(name, conv.kernel)
            found[name] = out * per_group * height * width * conv.positions
        for name, (inputs, out) in self.linears.items():
            found[name] = in_of.get(name, inputs) * out
        return found


def model_structure(model: nn.Module, input_shape: tuple[int, int, int]) -> Structure:
    """The convs, linear layers and channel groups of a plain (WAS-free) ``model``."""
    model = copy.deepcopy(model).cpu().eval()
    positions: dict[str, int] = {}
    hooks = [m.register_forward_hook(lambda mod, _a, out, n=n: positions.__setitem__(n, out.shape[-2] * out.shape[-1]))
             for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(torch.zeros(1, *input_shape))
    for hook in hooks:
        hook.remove()
    convs = {n: ConvShape(m.out_channels, m.in_channels, m.groups, tuple(m.kernel_size), positions[n])
             for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    linears = {n: (m.in_features, m.out_features) for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    return Structure(convs, linears, channel_groups(model, input_shape))


def channel_groups(model: nn.Module, input_shape: tuple[int, int, int]) -> tuple[ChannelGroup, ...]:
    """Each set of coupled conv output channels once, in module order of its first producer; groups that
    reach a linear layer's outputs (the classifier) or a grouped conv other than a depthwise one are left
    out (their channels are not cut)."""
    import torch_pruning as tp

    names = {m: n for n, m in model.named_modules()}
    with torch.enable_grad():
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.zeros(1, *input_shape))
    importance = tp.importance.GroupMagnitudeImportance(p=2)
    seen: set[str] = set()
    groups = []
    for name, conv in model.named_modules():
        if not isinstance(conv, nn.Conv2d) or name in seen:
            continue
        group = graph.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=list(range(conv.out_channels)))
        producers, consumers = _members(graph, group, names)
        seen.update(producers)
        if not producers or not _cuttable(model, producers, consumers):
            continue
        scores: Tensor = importance(group)
        ranking = tuple(int(i) for i in torch.argsort(scores, descending=True, stable=True))
        groups.append(ChannelGroup(tuple(producers), tuple(consumers), conv.out_channels, ranking))
    return tuple(groups)


def _members(graph, group, names: dict[nn.Module, str]) -> tuple[list[str], list[str]]:
    producers, consumers = [], []
    for dep, _ in group:
        module = dep.target.module
        if module not in names or not isinstance(module, (nn.Conv2d, nn.Linear)):
            continue
        if graph.is_out_channel_pruning_fn(dep.handler):
            producers.append(names[module])
        elif graph.is_in_channel_pruning_fn(dep.handler):
            consumers.append(names[module])
    order = {n: i for i, n in enumerate(names.values())}
    producers = sorted(dict.fromkeys(producers), key=order.__getitem__)
    consumers = sorted(dict.fromkeys(c for c in consumers if c not in producers), key=order.__getitem__)
    return producers, consumers


def _cuttable(model: nn.Module, producers: list[str], consumers: list[str]) -> bool:
    for name in producers + consumers:
        module = model.get_submodule(name)
        if isinstance(module, nn.Linear) and name in producers:
            return False
        if isinstance(module, nn.Conv2d) and module.groups > 1 and not (
                module.groups == module.in_channels == module.out_channels):
            return False
    return True
