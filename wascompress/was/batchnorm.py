"""BatchNorm statistics belong to a mode (docs/method.md §3.8).

Running statistics gathered while training with random Shadow Weights fit neither PW nor any one frozen
SW. :func:`recalibrate_bn_` re-estimates them for whatever the model currently runs (AOM, or a DOM seed
set with ``use_dom_``) from a few batches: statistics are reset and accumulated as an exact average
(``momentum=None``) with only the BatchNorm layers in training mode, so dropout stays off and the
result depends only on the batches given.
"""

from __future__ import annotations

import itertools
import logging
from typing import Iterable

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, _BN) and m.track_running_stats]


@torch.no_grad()
def recalibrate_bn_(
    model: nn.Module,
    batches: Iterable[Tensor | tuple[Tensor, ...] | list[Tensor]],
    num_batches: int | None = None,
    device: torch.device | str | None = None,
) -> int:
    """Re-estimate every BatchNorm's running mean/var from ``batches``; returns the images used.

    ``batches`` yields inputs or ``(inputs, labels)`` pairs; at most ``num_batches`` are used. The
    model is left in eval mode. A model without BatchNorm is left unchanged.
    """
    layers = batchnorm_layers(model)
    if not layers:
        return 0
    saved_momentum = [bn.momentum for bn in layers]
    model.eval()
    for bn in layers:
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    seen = 0
    try:
        for batch in itertools.islice(batches, num_batches):
            inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
            if device is not None:
                inputs = inputs.to(device, non_blocking=True)
            model(inputs)
            seen += inputs.shape[0]
    finally:
        for bn, momentum in zip(layers, saved_momentum):
            bn.momentum = momentum
        model.eval()
    if seen == 0:
        raise ValueError("BatchNorm re-estimation got no batches")
    log.debug("re-estimated %d BatchNorm layers on %d images", len(layers), seen)
    return seen
