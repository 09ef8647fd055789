"""Filter removal: whole zero filters of a frozen Shadow Weight become physically missing channels.

torch-pruning's DependencyGraph removes a conv's zero output filters together with everything coupled
to them (its BatchNorm, the next layers' input channels, depthwise partners, concatenations). A zero
filter does not make its channel zero, though: after BatchNorm and the activation it is a constant,
and the layers that consumed it saw that constant. So each consumer is compensated exactly: the
constant's contribution through the consumer (computed from the unpruned model) becomes a bias, or,
where zero padding makes it vary at the borders, a constant map added to the consumer's output.
Every removal is verified on random inputs against the model before it, and undone if it does not
match (a channel that meets a residual addition is not constant downstream, for instance).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

log = logging.getLogger(__name__)

CHANNEL_ALIGN = 16
"""Filters are removed only down to a multiple of this many channels. ONNX Runtime's CPU EP runs convs
in a blocked channel layout (NCHWc, 16 channels a block with AVX-512, 8 with AVX2); a channel count off
the block falls back to slower kernels. Measured here (ORT 1.31, batch 32, 16x16): a 3x3 depthwise conv
took 0.26 ms at 96 channels, 0.81 ms at 88 and 1.93 ms at 77; a 1x1 conv from 96 channels 0.99 ms to
80 outputs and 2.22 ms to 77. Zero filters left in place still compute zeros, so the output is the same."""


class CompensatedConv2d(nn.Module):
    """A conv plus a constant map: the contribution of removed input channels that were constant."""

    def __init__(self, conv: nn.Conv2d, offset: Tensor) -> None:
        super().__init__()
        self.conv = conv
        self.register_buffer("offset", offset.detach().clone()[None] if offset.dim() == 3 else offset.detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x) + self.offset


@dataclass(frozen=True)
class FilterChange:
    layer: str
    filters_before: int
    filters_after: int
    removed: bool
    reason: str


def zero_filters(conv: nn.Conv2d) -> list[int]:
    """Indices of the output filters whose weights are all zero."""
    weight = conv.weight.detach()
    return [int(i) for i in torch.nonzero(weight.flatten(1).abs().sum(dim=1) == 0).flatten()]


def _index(i: object) -> int:
    return int(getattr(i, "idx", i))


def _capture_inputs(model: nn.Module, modules: list[nn.Module], probe: Tensor) -> dict[nn.Module, Tensor]:
    captured: dict[nn.Module, Tensor] = {}
    hooks = [m.register_forward_pre_hook(lambda mod, args: captured.__setitem__(mod, args[0].detach()))
             for m in modules]
    try:
        with torch.no_grad():
            model(probe)
    finally:
        for hook in hooks:
            hook.remove()
    return captured


TORCH_PRUNING_TESTED = ((1, 6),)
"""The torch-pruning releases (major, minor) this module is tested with; pyproject.toml admits these."""


def check_torch_pruning() -> None:
    """Fail loudly on a torch-pruning release outside :data:`TORCH_PRUNING_TESTED` (its API changes
    between minor releases; pyproject.toml pins the range)."""
    import torch_pruning as tp

    version = tuple(int(part) for part in tp.__version__.split(".")[:2])
    if version not in TORCH_PRUNING_TESTED:
        raise RuntimeError(f"torch-pruning {tp.__version__} is not a tested release "
                           f"({', '.join('.'.join(map(str, v)) for v in TORCH_PRUNING_TESTED)}); "
                           "install one of those (pip install 'torch-pruning>=1.6,<1.7')")


def _try_remove(model: nn.Module, name: str, filters: list[int], probe: Tensor, reference: Tensor,
                tolerance: float) -> tuple[nn.Module | None, str]:
    import torch_pruning as tp

    check_torch_pruning()
    trial = copy.deepcopy(model)
    # torch-pruning traces through autograd: a caller's no_grad() must not reach it, nor a probe made under the
    # caller's inference mode (an inference tensor cannot be saved for backward: the clone is an ordinary one)
    with torch.enable_grad():
        graph = tp.DependencyGraph().build_dependency(trial, example_inputs=probe[:1].clone(), verbose=False)
    group = graph.get_pruning_group(trial.get_submodule(name), tp.prune_conv_out_channels, idxs=filters)
    if not graph.check_pruning_group(group):
        return None, "torch-pruning refused the group"
    pruned_out = {dep.target.module for dep, _ in group if graph.is_out_channel_pruning_fn(dep.handler)}
    consumers = [(dep.target.module, [_index(i) for i in idxs]) for dep, idxs in group
                 if graph.is_in_channel_pruning_fn(dep.handler) and dep.target.module not in pruned_out]
    for module, _ in consumers:
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            return None, f"consumer {type(module).__name__} is not a conv or linear layer"
        if isinstance(module, nn.Conv2d) and (module.groups > 1 or module.padding_mode != "zeros"):
            return None, "consumer is a grouped or non-zero-padded conv"
    compensations = _compensations(trial, consumers, probe)
    if isinstance(compensations, str):
        return None, compensations
    removed_out = {dep.target.module: sorted(_index(i) for i in idxs) for dep, idxs in group
                   if graph.is_out_channel_pruning_fn(dep.handler) and isinstance(dep.target.module, nn.Conv2d)}
    group.prune()
    for wrapper in [m for m in trial.modules() if isinstance(m, CompensatedConv2d) and m.conv in removed_out]:
        keep = [c for c in range(wrapper.offset.shape[1]) if c not in set(removed_out[wrapper.conv])]
        wrapper.offset = wrapper.offset[:, keep].contiguous()  # an earlier compensation of a now-pruned conv
    _fold_compensations_(trial, compensations)
    try:
        with torch.no_grad():
            output = trial(probe)
    except RuntimeError as err:  # a structure torch-pruning could not keep consistent
        return None, f"pruned model does not run ({str(err).splitlines()[0]})"
    error = float((output - reference).abs().max())
    if error > tolerance:
        return None, f"output changed by {error:.2e}"
    return trial, f"removed {len(filters)} zero filters (max output change {error:.1e})"


def _compensations(trial: nn.Module, consumers: list[tuple[nn.Module, list[int]]],
                   probe: Tensor) -> list[tuple[nn.Module, Tensor]] | str:
    """What each consumer of the removed (constant) channels received from them: its output's share, to
    fold back in once they are gone; a reason instead where a removed channel is not constant."""
    inputs = _capture_inputs(trial, [m for m, _ in consumers], probe)
    compensations = []
    for module, idxs in consumers:
        removed = inputs[module][:, idxs]
        if not (removed == removed[:1]).all():
            return "removed channels are not constant where they are consumed"
        kept_only = torch.zeros_like(inputs[module][:1])
        kept_only[:, idxs] = removed[:1]
        with torch.no_grad():
            if isinstance(module, nn.Linear):
                contribution = F.linear(kept_only, module.weight)[0]
            else:
                contribution = F.conv2d(kept_only, module.weight, None, module.stride, module.padding,
                                        module.dilation, module.groups)[0]
        compensations.append((module, contribution))
    return compensations


def _fold_compensations_(trial: nn.Module, compensations: list[tuple[nn.Module, Tensor]]) -> None:
    """Fold each consumer's lost share into its bias (uniform over the map) or a constant map beside it."""
    names = {m: n for n, m in trial.named_modules()}
    for module, contribution in compensations:
        uniform = contribution if contribution.dim() == 1 else contribution.flatten(1)
        if contribution.dim() == 1 or (uniform == uniform[:, :1]).all():
            bias = uniform if contribution.dim() == 1 else uniform[:, 0]
            if module.bias is None:
                module.bias = nn.Parameter(bias.clone())
            else:
                with torch.no_grad():
                    module.bias.add_(bias)
        else:
            trial.set_submodule(names[module], CompensatedConv2d(module, contribution))


def aligned_removal(out_channels: int, zero: list[int], align: int) -> list[int]:
    """The zero filters to remove so that the channels left are a multiple of ``align``."""
    keep = -(-(out_channels - len(zero)) // align) * align
    return zero[: max(0, out_channels - keep)]


@torch.inference_mode(False)  # under a caller's inference mode the pruned copy would hold inference tensors
def remove_zero_filters(model: nn.Module, probe: Tensor, tolerance: float = 1e-4,
                        channel_align: int = CHANNEL_ALIGN) -> tuple[nn.Module, list[FilterChange]]:
    """A copy of ``model`` (eval mode) without its removable zero filters, and what was done per layer.

    ``probe`` is a batch of at least two inputs of the deployment shape; ``tolerance`` bounds the change
    of the output on it (relative to the output's largest magnitude); the channels left in a layer are a
    multiple of ``channel_align`` (see :data:`CHANNEL_ALIGN`).
    """
    model = model.eval()
    with torch.no_grad():
        reference = model(probe)
    limit = tolerance * max(1.0, float(reference.abs().max()))
    changes = []
    conv_count = sum(isinstance(m, nn.Conv2d) for m in model.modules())
    for position in range(conv_count):
        # names are looked up afresh: compensating a consumer wraps it, which renames it
        name, conv = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)][position]
        filters = zero_filters(conv)
        if not filters:
            continue
        before = conv.out_channels
        if len(filters) == before:
            changes.append(FilterChange(name, before, before, False, "every filter is zero"))
            continue
        aligned = aligned_removal(before, filters, channel_align)
        if not aligned:
            changes.append(FilterChange(name, before, before, False, f"kept zeros: removing {len(filters)} of "
                                        f"{before} filters leaves no multiple of {channel_align} channels"))
            continue
        filters = aligned
        trial, reason = _try_remove(model, name, filters, probe, reference, limit)
        if trial is None:
            changes.append(FilterChange(name, before, before, False, f"kept zeros: {reason}"))
            log.debug("%s: %s", name, reason)
            continue
        model = trial
        changes.append(FilterChange(name, before, before - len(filters), True, reason))
    return model, changes
